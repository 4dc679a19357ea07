"""The identity matrix: real uids x files x modes, through the daemon (running
as root, switching per request). Each user gets exactly what its uid, gid and
supplementary groups allow; every denial is EACCES. The clients run as the
synthetic users with setpriv; their groups come from the kernel, so
`--groups` really decides."""

import os

import pytest

from conftest import (GID_SHARED, UID_A, UID_B, UID_C, USER_A, USER_B, USER_C,
                      User, need_root, sha256)

A, B, C, G = UID_A, UID_B, UID_C, GID_SHARED

# path -> (owner uid, group gid, mode); directories end in "/".
TREE = {
    "a0600": (A, A, 0o600),
    "a0640g": (A, G, 0o640),
    "a0644": (A, A, 0o644),
    "a0400": (A, A, 0o400),
    "a0060g": (A, G, 0o060),     # owner class has no bits: A is denied
    "a0000": (A, A, 0o000),
    "g0040": (0, G, 0o040),      # readable through the group only
    "r0600": (0, 0, 0o600),      # root's: the daemon (root) must not leak it
    "r0640": (0, 0, 0o640),      # root's group: the daemon's gid 0 must not leak
    "r0644": (0, 0, 0o644),
    "adir0700/": (A, A, 0o700),  # only A may search it
    "adir0700/f": (A, A, 0o644),
    "adir0600/": (A, A, 0o600),  # readable, not searchable: nobody gets in
    "adir0600/f": (A, A, 0o644),
    "gdir0750/": (A, G, 0o750),  # searchable by the shared group
    "gdir0750/f": (A, A, 0o644),
    "gdir0750/g0640": (A, G, 0o640),
    "rdir0711/": (0, 0, 0o711),  # search without read: files still reachable
    "rdir0711/f": (0, 0, 0o644),
}

OK, NO = "OK", "EACCES"
FILES = [p for p in TREE if not p.endswith("/")]

# user variant -> (User, {path: expected}); the expectation is written out
# by hand, not computed, so the test states the rules it checks.
MATRIX = {
    "A": (USER_A, {
        "a0600": OK, "a0640g": OK, "a0644": OK, "a0400": OK, "a0060g": NO, "a0000": NO,
        "g0040": NO, "r0600": NO, "r0640": NO, "r0644": OK,
        "adir0700/f": OK, "adir0600/f": NO, "gdir0750/f": OK, "gdir0750/g0640": OK,
        "rdir0711/f": OK}),
    "B_with_shared_group": (USER_B, {
        "a0600": NO, "a0640g": OK, "a0644": OK, "a0400": NO, "a0060g": OK, "a0000": NO,
        "g0040": OK, "r0600": NO, "r0640": NO, "r0644": OK,
        "adir0700/f": NO, "adir0600/f": NO, "gdir0750/f": OK, "gdir0750/g0640": OK,
        "rdir0711/f": OK}),
    "B_without_groups": (User(B, B, ()), {
        "a0600": NO, "a0640g": NO, "a0644": OK, "a0400": NO, "a0060g": NO, "a0000": NO,
        "g0040": NO, "r0600": NO, "r0640": NO, "r0644": OK,
        "adir0700/f": NO, "adir0600/f": NO, "gdir0750/f": NO, "gdir0750/g0640": NO,
        "rdir0711/f": OK}),
    "C": (USER_C, {
        "a0600": NO, "a0640g": NO, "a0644": OK, "a0400": NO, "a0060g": NO, "a0000": NO,
        "g0040": NO, "r0600": NO, "r0640": NO, "r0644": OK,
        "adir0700/f": NO, "adir0600/f": NO, "gdir0750/f": NO, "gdir0750/g0640": NO,
        "rdir0711/f": OK}),
    "C_primary_gid_shared": (User(C, G, ()), {
        "a0600": NO, "a0640g": OK, "a0644": OK, "a0400": NO, "a0060g": OK, "a0000": NO,
        "g0040": OK, "r0600": NO, "r0640": NO, "r0644": OK,
        "adir0700/f": NO, "adir0600/f": NO, "gdir0750/f": OK, "gdir0750/g0640": OK,
        "rdir0711/f": OK}),
    "C_with_unrelated_groups": (User(C, C, (61200, 61201, 0)), {
        # gid 0 as a supplementary group is honoured: that is the client's own
        "a0600": NO, "a0640g": NO, "a0644": OK, "a0400": NO, "a0060g": NO, "a0000": NO,
        "g0040": NO, "r0600": NO, "r0640": OK, "r0644": OK,
        "adir0700/f": NO, "adir0600/f": NO, "gdir0750/f": NO, "gdir0750/g0640": NO,
        "rdir0711/f": OK}),
}


def content(path):
    return ("content of %s\n" % path).encode() * (1 + len(path))


def build_tree(d):
    # Directories first (as root, so files can be made inside), modes last.
    for path, (uid, gid, mode) in TREE.items():
        if path.endswith("/"):
            (d.root / path).mkdir()
    for path, (uid, gid, mode) in TREE.items():
        if not path.endswith("/"):
            d.put(path, content(path), mode=mode, uid=uid, gid=gid)
    for path, (uid, gid, mode) in TREE.items():
        if path.endswith("/"):
            os.chown(d.root / path, uid, gid)
            os.chmod(d.root / path, mode)


def test_matrix_covers_every_file():
    for name, (user, table) in MATRIX.items():
        assert sorted(table) == sorted(FILES), name


@pytest.mark.parametrize("variant", sorted(MATRIX))
def test_identity_matrix(daemon, runner, variant):
    need_root()
    build_tree(daemon)
    daemon.start()
    user, table = MATRIX[variant]
    paths = sorted(table)
    # One connection per op, all requests on it: identity is per request.
    for op in ("get", "stat"):
        results = runner.pfp(user, daemon.sock, op, *paths)
        assert len(results) == len(paths), results
        got = {}
        for path, res in zip(paths, results):
            assert "error" not in res, res
            assert res["problems"] == [], (path, res)
            got[path] = res["name"]
            if res["name"] == "OK":
                data = content(path)
                assert res["size"] == len(data), path
                if op == "get":
                    assert res["sha256"] == sha256(data), path
            elif res["name"] == "EACCES":
                assert res["message"].startswith("EACCES: "), res
        wrong = {p: (got[p], table[p]) for p in paths if got[p] != table[p]}
        assert not wrong, "%s %s: {path: (got, expected)} %r" % (variant, op, wrong)


def test_supplementary_groups_decide(daemon, runner):
    """Same uid and gid, with and without the shared group: only the groups
    the kernel reports for the client count."""
    need_root()
    build_tree(daemon)
    daemon.start()
    with_g = runner.pfp(User(B, B, (G,)), daemon.sock, "get", "a0640g", "g0040")
    without = runner.pfp(User(B, B, ()), daemon.sock, "get", "a0640g", "g0040")
    other_g = runner.pfp(User(B, B, (61200,)), daemon.sock, "get", "a0640g", "g0040")
    assert [r["name"] for r in with_g] == ["OK", "OK"]
    assert [r["name"] for r in without] == ["EACCES", "EACCES"]
    assert [r["name"] for r in other_g] == ["EACCES", "EACCES"]


def test_many_groups(daemon, runner):
    """A client in many groups, the shared one last."""
    need_root()
    build_tree(daemon)
    daemon.start()
    groups = tuple(range(62000, 62000 + 200)) + (G,)
    res = runner.pfp(User(C, C, groups), daemon.sock, "get", "a0640g", "a0600")
    assert [r["name"] for r in res] == ["OK", "EACCES"]


def test_identity_via_cli(daemon, runner, workdir):
    need_root()
    build_tree(daemon)
    daemon.start()
    p = runner.cli(USER_A, "-s", daemon.sock, "get", "a0600")
    assert (p.returncode, p.stdout) == (0, content("a0600")), p.stderr
    p = runner.cli(USER_C, "-s", daemon.sock, "get", "a0600")
    assert p.returncode == 12, p.stderr
    assert p.stderr.startswith(b"pipefile: a0600: "), p.stderr
    assert p.stdout == b""
    p = runner.cli(USER_B, "-s", daemon.sock, "stat", "a0640g")
    assert p.returncode == 0, p.stderr
    p = runner.cli(User(B, B, ()), "-s", daemon.sock, "stat", "a0640g")
    assert p.returncode == 12, p.stderr


def test_root_client_served_as_root(daemon):
    """With serve_root_clients = yes a root client reads root's files (and
    CAP_DAC_OVERRIDE applies to it as to root)."""
    need_root()
    build_tree(daemon)
    daemon.start()
    assert daemon.get("r0600").body == content("r0600")
    assert daemon.get("a0000").body == content("a0000")


def test_identity_alternates_on_one_worker(daemon, runner):
    """One worker serving A and C back to back: each request gets its own
    identity, never the previous one's."""
    need_root()
    build_tree(daemon)
    daemon.set("server", "workers", "1")
    daemon.start()
    for _ in range(3):
        assert [r["name"] for r in runner.pfp(USER_A, daemon.sock, "get", "a0600", "r0600")] == ["OK", "EACCES"]
        assert [r["name"] for r in runner.pfp(USER_C, daemon.sock, "get", "a0600", "a0644")] == ["EACCES", "OK"]
        assert daemon.get("r0600").name == "OK"

"""Policy from [identity]: a client is served iff its uid is in allow_users,
its gid or a supplementary group is in allow_groups, its uid is not in
deny_users, none of its groups is in deny_groups, and it is not root unless
serve_root_clients. Otherwise EPERM, before any file is looked at."""

import pytest

from conftest import (GID_SHARED, UID_A, UID_B, UID_C, USER_A, USER_B, USER_C,
                      User, need_root)

A, B, C, G = UID_A, UID_B, UID_C, GID_SHARED
ROOT = "root"


def names(runner, user, sock, *paths):
    res = runner.pfp(user, sock, "get", *paths)
    for r in res:
        assert "error" not in r, r
        assert r["problems"] == [], r
        if r["name"] == "EPERM":
            assert r["message"].startswith("EPERM: "), r
    return [r["name"] for r in res]


def root_status(d, path="pub"):
    with d.conn() as c:
        r = c.get(path)
        assert r.problems() == []
        return r.name


# (identity settings, {who: expected for a 0644 file and for a missing one})
# EPERM comes before the file is looked at, so "missing" is EPERM too.
POLICIES = {
    "allow_users_A": ({"allow_users": str(A)},
                      {"A": "OK", "B": "EPERM", "C": "EPERM", ROOT: "EPERM"}),
    "allow_users_A_and_root": ({"allow_users": "%d, 0" % A},
                               {"A": "OK", "B": "EPERM", "C": "EPERM", ROOT: "OK"}),
    "allow_users_star": ({"allow_users": "*"},
                         {"A": "OK", "B": "OK", "C": "OK", ROOT: "OK"}),
    "deny_users_B": ({"deny_users": str(B)},
                     {"A": "OK", "B": "EPERM", "C": "OK", ROOT: "OK"}),
    "deny_users_beats_allow": ({"allow_users": "%d,%d" % (A, B), "deny_users": "%d,%d" % (B, C)},
                               {"A": "OK", "B": "EPERM", "C": "EPERM", ROOT: "EPERM"}),
    "deny_users_star": ({"deny_users": "*"},
                        {"A": "EPERM", "B": "EPERM", "C": "EPERM", ROOT: "EPERM"}),
    "allow_groups_shared": ({"allow_groups": str(G)},       # B has it as a supplementary group
                            {"A": "EPERM", "B": "OK", "C": "EPERM", ROOT: "EPERM"}),
    "allow_groups_primary": ({"allow_groups": str(C)},      # C's primary gid
                             {"A": "EPERM", "B": "EPERM", "C": "OK", ROOT: "EPERM"}),
    "deny_groups_shared": ({"deny_groups": str(G)},
                           {"A": "OK", "B": "EPERM", "C": "OK", ROOT: "OK"}),
    "deny_groups_primary": ({"deny_groups": str(A)},
                            {"A": "EPERM", "B": "OK", "C": "OK", ROOT: "OK"}),
    "deny_groups_beats_allow_groups": ({"allow_groups": "%d,%d" % (G, A), "deny_groups": str(G)},
                                       {"A": "OK", "B": "EPERM", "C": "EPERM", ROOT: "EPERM"}),
    "no_root_clients": ({"serve_root_clients": "no"},
                        {"A": "OK", "B": "OK", "C": "OK", ROOT: "EPERM"}),
    "no_root_clients_even_if_allowed": ({"serve_root_clients": "no", "allow_users": "0,%d" % A},
                                        {"A": "OK", "B": "EPERM", "C": "EPERM", ROOT: "EPERM"}),
    "root_by_name_denied": ({"deny_users": "root"},
                            {"A": "OK", "B": "OK", "C": "OK", ROOT: "EPERM"}),
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_policy(daemon, runner, policy):
    need_root()
    settings, expected = POLICIES[policy]
    daemon.put("pub", b"public\n", mode=0o644)
    daemon.set("identity", "serve_root_clients", "yes")
    for k, v in settings.items():
        daemon.set("identity", k, v)
    daemon.start()
    users = {"A": USER_A, "B": USER_B, "C": USER_C}
    got = {}
    for who, user in users.items():
        got[who] = names(runner, user, daemon.sock, "pub", "missing")
    got[ROOT] = [root_status(daemon, "pub"), root_status(daemon, "missing")]
    want = {who: [e, e if e == "EPERM" else "ENOENT"] for who, e in expected.items()}
    assert got == want


def test_deny_groups_sees_supplementary_groups(daemon, runner):
    """B denied only while the kernel reports the shared group for it."""
    need_root()
    daemon.put("pub", b"public\n")
    daemon.set("identity", "deny_groups", str(G))
    daemon.start()
    assert names(runner, User(B, B, (G,)), daemon.sock, "pub") == ["EPERM"]
    assert names(runner, User(B, B, ()), daemon.sock, "pub") == ["OK"]
    assert names(runner, User(B, B, (61200, 61201, G)), daemon.sock, "pub") == ["EPERM"]
    assert names(runner, User(B, G, ()), daemon.sock, "pub") == ["EPERM"]


def test_eperm_keeps_connection_usable(daemon):
    need_root()  # the test process is the root client refused here
    daemon.put("pub", b"public\n")
    daemon.set("identity", "serve_root_clients", "no")
    daemon.start()
    with daemon.conn() as c:
        for _ in range(5):
            r = c.get("pub")
            assert (r.name, r.body) == ("EPERM", b"")
            assert c.stat("pub").name == "EPERM"


def test_eperm_via_cli(daemon, runner):
    need_root()  # the test process is the root client refused here
    daemon.put("pub", b"public\n")
    daemon.set("identity", "serve_root_clients", "no")
    daemon.start()
    p = runner.cli(None, "-s", daemon.sock, "get", "pub")
    assert p.returncode == 18, p.stderr
    assert p.stderr.startswith(b"pipefile: pub: "), p.stderr

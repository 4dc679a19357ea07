"""Identity torture: many identities at once on a few worker threads, and not
one wrong answer.

Twelve identities (eight uids, some of them twice with other groups or
another primary gid, so that no two identities may read the same set of
files) hammer one daemon with four workers: every identity's keep-alive
connections pipeline thousands of GETs while its short connections come and
go, over 100,000 requests in all, so that a worker's consecutive requests
come from different identities all the time. The served tree holds files
each identity may read and files it may not: owner-only (0600), readable by
one group (0640) whether it is a primary or a supplementary one, refused to
one group and given to everyone else (0604), refused to its owner (0064), in
directories some identities cannot search (no x) or not fully, and a name
that exists for nobody.

What each identity may read is worked out twice without the daemon: by the
permission rules from the modes, and by a process of that identity opening
every file (torture_client.py probe); the two must agree. The daemon must
then give exactly that answer to every request: for an allowed file its
exact bytes (sha256; each file's content starts with its own name, so a
wrong body says whose bytes it carried), for a refused one the refusal and
no byte. Finally the access log holds one line per request, each naming the
asking uid and gid and a status that identity may get.

This is what catches a worker thread that keeps (or caches) the previous
client's uid, gid or supplementary groups."""

import itertools
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import CHILD_ENV, HERE, PY, User, need_root, parse_log_line, sha256

OUTSIDER = 61299  # owns what no identity owns; never a client
GROUPS = list(range(61300, 61306))

# User(uid, primary gid, supplementary groups, name)
IDENTITIES = [
    User(61200, 61200, (61300, 61301), "u0"),
    User(61201, 61201, (61301, 61302), "u1"),
    User(61202, 61202, (61302, 61303), "u2"),
    User(61203, 61203, (61303, 61300, 61304), "u3"),
    User(61204, 61204, (), "u4"),
    User(61205, 61300, (61305,), "u5"),  # a shared group as its primary gid
    User(61206, 61206, tuple(GROUPS), "u6"),  # every group
    User(61207, 61207, (61305,), "u7"),
    # The same uids again with other credentials: a thread that reused a
    # previous client's groups or gid because the uid matched is caught here.
    User(61200, 61200, (), "u0-nogroups"),
    User(61200, 61200, (61300,), "u0-onegroup"),  # a prefix of u0's
    User(61201, 61303, (61301, 61302), "u1-othergid"),
    User(61202, 61202, (61302, 61304), "u2-othergroups"),  # as many as u2's
]

WORKERS = 4
CONNS = 4  # keep-alive connections per identity
REQUESTS = 2000  # GETs on each
PIPELINE = 16
SHORT = 300  # short connections per identity, 1 to 3 GETs each


def tree():
    """The served tree: (path, kind, uid, gid, mode, size) with kind "d" for a
    directory, "f" for a file, "-" for a name that does not exist. Parents
    come before their contents."""
    t = []

    def d(path, uid, gid, mode):
        t.append((path, "d", uid, gid, mode, 0))

    def f(path, uid, gid, mode, size=0):
        t.append((path, "f", uid, gid, mode, size))

    O = OUTSIDER
    d("own", O, O, 0o755)
    for uid in range(61200, 61208):
        f("own/u%d" % uid, uid, uid, 0o600)
    d("ownerdenied", O, O, 0o755)
    for uid in (61200, 61203, 61205):
        # the owner's own bits (none) apply to the owner, whoever else may read
        f("ownerdenied/u%d" % uid, uid, 61300, 0o064)
    d("grp", O, O, 0o755)
    for g in GROUPS:
        f("grp/g%d" % g, O, g, 0o640)
        # the group's bits (none) apply to its members, everyone else reads
        f("grp/not%d" % g, O, g, 0o604)
    d("prim", O, O, 0o755)
    for g in (61200, 61201, 61202, 61204, 61207):
        f("prim/g%d" % g, O, g, 0o640)  # only who has g as its primary gid
    d("world", O, O, 0o755)
    f("world/any", O, O, 0o644, 65537)
    f("world/others", O, O, 0o604)
    f("world/nobody", O, O, 0o000)
    d("dirs", O, O, 0o755)
    d("dirs/u61203", 61203, 61203, 0o700)  # only its owner may search it
    f("dirs/u61203/f", 61203, 61203, 0o644, 70000)
    t.append(("dirs/u61203/missing", "-", 0, 0, 0, 0))  # ENOENT or EACCES
    d("dirs/g61301", O, 61301, 0o750)
    f("dirs/g61301/f", O, O, 0o644, 131073)
    d("dirs/g61301/g61304", O, 61304, 0o750)  # needs both groups
    f("dirs/g61301/g61304/f", O, O, 0o644)
    d("dirs/not61302", O, 61302, 0o705)  # searchable by all but 61302
    f("dirs/not61302/f", O, O, 0o644)
    d("dirs/rnox", O, 61305, 0o754)  # others may list it, not search it
    f("dirs/rnox/f", O, O, 0o644)
    d("dirs/xonly", O, O, 0o711)  # searchable, not listable: fine to open
    f("dirs/xonly/f", O, O, 0o644)
    t.append(("missing", "-", 0, 0, 0, 0))
    # Sizes: small and all different, a few bigger ones above.
    out = []
    for i, (path, kind, uid, gid, mode, size) in enumerate(t):
        if kind == "f" and size == 0:
            size = 40 + (i * 797) % 3000
        out.append((path, kind, uid, gid, mode, size))
    return out


def content(path, size):
    """size bytes that start with the file's own name."""
    head = ("torture file %s\n" % path).encode()
    return (head * (size // len(head) + 1))[:size]


def may(user, uid, gid, mode, bit):
    """Unix permission check for one of r=4 / x=1: the first class that
    matches (owner, then group, then others) decides, even when it says no."""
    if user.uid == uid:
        return bool(mode & (bit << 6))
    if gid == user.gid or gid in user.groups:
        return bool(mode & (bit << 3))
    return bool(mode & bit)


def model(user, entries):
    """What user gets for each name, from the modes alone."""
    byname = {e[0]: e for e in entries}
    out = {}
    for path, kind, uid, gid, mode, size in entries:
        if kind == "d":
            continue
        parts = path.split("/")
        status = None
        for i in range(1, len(parts)):
            _, _, duid, dgid, dmode, _ = byname["/".join(parts[:i])]
            if not may(user, duid, dgid, dmode, 1):
                status = "EACCES"
                break
        if status is None:
            if kind == "-":
                status = "ENOENT"
            else:
                status = "OK" if may(user, uid, gid, mode, 4) else "EACCES"
        out[path] = status
    return out


def build(daemon, entries):
    hashes = {}
    for path, kind, uid, gid, mode, size in entries:
        p = daemon.root / path
        if kind == "d":
            p.mkdir()
        elif kind == "f":
            data = content(path, size)
            p.write_bytes(data)
            hashes[path] = sha256(data)
        else:
            continue
        os.chown(p, uid, gid)
        os.chmod(p, mode)
    return hashes


@pytest.mark.pf_timeout(600)
def test_identity_torture(daemon, workdir):
    need_root()
    entries = tree()
    hashes = build(daemon, entries)
    names = [e[0] for e in entries if e[1] != "d"]
    sizes = {e[0]: e[5] for e in entries}

    # The clients' files, where every identity can read them.
    cdir = workdir / "client"
    cdir.mkdir(mode=0o755)
    for name in ("pfp.py", "torture_client.py"):
        shutil.copy2(HERE / name, cdir / name)
        os.chmod(cdir / name, 0o755)
    probe_spec = cdir / "probe.json"
    probe_spec.write_text(json.dumps(
        [{"path": n, "file": str(daemon.root / n)} for n in names]))
    os.chmod(probe_spec, 0o644)

    def argv(user, *args):
        return user.setpriv() + [PY, "-I", str(cdir / "torture_client.py")] + [
            str(a) for a in args]

    # Expected answers: the modes' and the kernel's, which must agree.
    expected = {}
    for u in IDENTITIES:
        p = subprocess.run(argv(u, "probe", probe_spec), capture_output=True,
                           timeout=60, env=CHILD_ENV, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        got = json.loads(p.stdout)
        assert got["ids"] == [u.uid, u.gid, sorted(set(u.groups))], (u, got["ids"])
        want = model(u, entries)
        assert got["results"] == want, "%s: the kernel and the modes disagree: %r" % (
            u.name, {k: (v, want[k]) for k, v in got["results"].items() if v != want[k]})
        expected[u.name] = want
    # The matrix can tell every two identities apart and every identity gets
    # both answers, so an answer given for the wrong identity shows.
    for a, b in itertools.combinations(IDENTITIES, 2):
        assert expected[a.name] != expected[b.name], (a, b)
    for u in IDENTITIES:
        assert {"OK", "EACCES"} <= set(expected[u.name].values()), u

    daemon.set("server", "workers", WORKERS)
    daemon.start()

    procs = []
    try:
        for i, u in enumerate(IDENTITIES):
            spec = [{"path": n, "status": expected[u.name][n], "sha256": hashes.get(n),
                     "size": sizes[n]} for n in names]
            sp = cdir / ("spec-%s.json" % u.name)
            sp.write_text(json.dumps(spec))
            os.chmod(sp, 0o644)
            procs.append((u, subprocess.Popen(
                argv(u, "run", daemon.sock, sp, "--conns", CONNS, "--requests", REQUESTS,
                     "--pipeline", PIPELINE, "--short", SHORT, "--seed", i + 1),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=CHILD_ENV)))
        # Every identity's connections are open before any request is sent.
        for u, p in procs:
            line = p.stdout.readline()
            assert json.loads(line) == {"ready": CONNS}, (u, line, p.stderr.read())
        t0 = time.monotonic()
        for u, p in procs:
            p.stdin.write(b"go\n")
            p.stdin.flush()
        results = {}
        for u, p in procs:
            out, err = p.communicate(timeout=500)
            assert p.returncode == 0, (u, err.decode(errors="replace"))
            results[u.name] = json.loads(out.decode().strip().splitlines()[-1])
        wall = time.monotonic() - t0
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)

    total = sum(r["requests"] for r in results.values())
    allowed = 0
    bad = {n: r for n, r in results.items() if r["wrong"] or r["errors"]}
    assert not bad, "wrong answers: %s" % json.dumps(bad, indent=1)
    for u in IDENTITIES:
        r = results[u.name]
        assert r["ok"] == r["requests"] >= CONNS * REQUESTS + SHORT, (u.name, r)
    assert total >= 100000
    print("\nidentity torture: %d requests from %d identities (%d uids) on %d workers "
          "in %.1f s, 0 wrong" % (total, len(IDENTITIES), len({u.uid for u in IDENTITIES}),
                                  WORKERS, wall))

    # The access log: one line per request, each with the asker's uid and
    # gid and a status one of that (uid, gid)'s identities gets for the path.
    assert daemon.stop() == 0
    may_get = {}
    for u in IDENTITIES:
        for n, s in expected[u.name].items():
            may_get.setdefault((u.uid, u.gid, n), set()).add(s)
    lines = daemon.log_lines()
    assert len(lines) == total
    last_uid = {}
    switches = 0
    for line in lines:
        rec = parse_log_line(line, "text")
        path = rec["path"].decode()
        assert rec["op"] == "GET", rec
        assert rec["status"] in may_get.get((rec["uid"], rec["gid"], path), ()), rec
        if rec["status"] == "OK":
            assert rec["bytes"] == sizes[path], rec
            allowed += 1
        else:
            assert rec["bytes"] == 0, rec
        if last_uid.get(rec["worker"], rec["uid"]) != rec["uid"]:
            switches += 1
        last_uid[rec["worker"]] = rec["uid"]
    # Consecutive requests on one worker came from different uids again and
    # again (or the test proved nothing about switching).
    assert len(last_uid) == WORKERS, sorted(last_uid)
    assert switches >= total // 20, switches
    print("identity torture: %d served, %d refused; %d uid changes between "
          "consecutive requests of a worker" % (allowed, total - allowed, switches))

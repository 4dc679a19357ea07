"""A worker keeps the last client's credentials between requests
(identity_release) and switches nothing when the next request is the same
user's. These tests make one worker serve many users in turn, including one
uid with and without a supplementary group, and check that every answer is
still exactly what that client's own credentials allow: a switch skipped
wrongly would hand one client another's access."""

import json

from conftest import User, need_root, sha256, wait_for
from test_ambient import threads
from test_identity import MATRIX, build_tree, content

# Same uid and gid, differing only in groups: only an exact comparison
# tells them apart.
PAIRS = ["B_with_shared_group", "B_without_groups", "C",
         "C_primary_gid_shared", "C_with_unrelated_groups", "A"]


def check(results, table, paths, who):
    got = {p: r["name"] for p, r in zip(paths, results)}
    wrong = {p: (got[p], table[p]) for p in paths if got[p] != table[p]}
    assert not wrong, "%s: {path: (got, expected)} %r" % (who, wrong)
    for p, r in zip(paths, results):
        assert r["problems"] == [], (who, p, r)
        if r["name"] == "OK":
            assert r["sha256"] == sha256(content(p)), (who, p)


def test_one_worker_serves_users_in_turn_exactly(daemon, runner):
    need_root()
    daemon.set("server", "workers", 1)
    build_tree(daemon)
    daemon.start()
    # Three rounds over every variant, each its own connection: the single
    # worker goes from each client's credentials straight to the next's.
    for rnd in range(3):
        for name in PAIRS:
            user, table = MATRIX[name]
            paths = sorted(table)
            res = runner.pfp(user, daemon.sock, "get", *paths)
            assert len(res) == len(paths), res
            check(res, table, paths, "round %d %s" % (rnd, name))


def test_interleaved_connections_of_two_users_on_one_worker(daemon, runner):
    """Two users' requests alternate on one worker, request by request
    (two long pipelines in flight at once), and neither ever gets the
    other's file."""
    need_root()
    daemon.set("server", "workers", 1)
    a = User(61001, 61001, ())
    b = User(61002, 61002, (61100,))
    daemon.put("a", b"a's own\n" * 100, mode=0o600, uid=a.uid, gid=a.gid)
    daemon.put("b", b"b's own\n" * 100, mode=0o600, uid=b.uid, gid=b.gid)
    daemon.put("g", b"group's\n" * 100, mode=0o040, uid=0, gid=61100)
    daemon.start()
    n = 300
    pa = runner.popen_pfp(a, daemon.sock, "get", *(["a", "b", "g"] * n))
    pb = runner.popen_pfp(b, daemon.sock, "get", *(["b", "a", "g"] * n))
    outs = {}
    for who, p in (("a", pa), ("b", pb)):
        out, err = p.communicate(timeout=120)
        assert p.returncode in (0, 3), err
        outs[who] = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
    assert [r["name"] for r in outs["a"]] == ["OK", "EACCES", "EACCES"] * n
    assert [r["name"] for r in outs["b"]] == ["OK", "EACCES", "OK"] * n
    assert all(r["sha256"] == sha256(b"a's own\n" * 100)
               for r in outs["a"][0::3])
    assert all(r["sha256"] == sha256(b"b's own\n" * 100)
               for r in outs["b"][0::3])


def test_a_worker_logs_as_the_daemon_not_as_the_client_it_holds(daemon, runner):
    """A line the worker logs goes out with the daemon's credentials (a
    syslog line is sent to a path): log.c's guard returns the worker to them
    first. Here a client's file shrinks while it is being sent, the worker
    logs that, and its fs ids are the daemon's afterwards, not the client's
    it held while sending."""
    need_root()
    daemon.set("server", "workers", 1)
    big = daemon.put("big", b"z" * (16 << 20), mode=0o644)
    daemon.start()
    a = User(61001, 61001, ())
    # The client asks and reads nothing at first, so the answer stalls in
    # the socket; the file is cut short meanwhile, then the client reads.
    code = (
        "import socket, sys, time\n"
        "sys.path.insert(0, %r)\n"
        "import pfp\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(%r)\n"
        "s.sendall(pfp.get_request('big'))\n"
        "sys.stdout.write('asked\\n'); sys.stdout.flush()\n"
        "sys.stdin.readline()\n"
        "n = 0\n"
        "while True:\n"
        "    b = s.recv(1 << 20)\n"
        "    if not b: break\n"
        "    n += len(b)\n"
        "print(n)\n" % (str(runner.tools), str(daemon.sock)))
    import subprocess
    p = subprocess.Popen(a.setpriv() + ["/usr/bin/python3", "-I", "-c", code],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=str(runner.tools))
    runner.procs.append(p)
    assert p.stdout.readline() == b"asked\n"
    worker = [t for t, sts in threads(daemon.proc.pid).items()
              if t.startswith("pf-worker-")]
    assert worker == ["pf-worker-1"], worker

    def worker_fsuid():
        (st,) = threads(daemon.proc.pid)["pf-worker-1"]
        return int(st["Uid"].split()[3])
    # While the answer is in flight the worker holds the client's ids.
    wait_for(lambda: worker_fsuid() == a.uid, 10, "the worker to act as A")
    with open(big, "r+b") as f:
        f.truncate(1 << 20)
    out, err = p.communicate(b"go\n", timeout=30)
    assert int(out) < (16 << 20) + 64, out  # cut short, never padded
    wait_for(lambda: "ended" in daemon.stderr(), 10, "the worker's log line")
    assert worker_fsuid() == 0, "the worker logged as uid %d" % worker_fsuid()

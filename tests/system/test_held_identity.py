"""A worker keeps the last client's credentials between requests
(identity_release) and switches nothing when the next request is the same
user's. These tests make one worker serve many users in turn, including one
uid with and without a supplementary group, and check that every answer is
still exactly what that client's own credentials allow: a switch skipped
wrongly would hand one client another's access."""

import json
import time

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


def test_an_idle_worker_holds_nobodys_credentials(daemon, runner):
    """The credentials are kept only while the worker is busy: 50 ms after
    its last loop turn it is back to the daemon's, so /proc (readable by
    every user) shows no client's ids or groups for longer than that, even
    while the worker waits on a slow client."""
    need_root()
    daemon.set("server", "workers", 1)
    daemon.put("f", b"data\n", mode=0o644)
    daemon.put("big", b"z" * (32 << 20), mode=0o644)
    daemon.start()
    a = User(61001, 61001, (61100, 61234))
    res = runner.pfp(a, daemon.sock, "get", "f")
    assert [r["name"] for r in res] == ["OK"], res

    def worker():
        (st,) = threads(daemon.proc.pid)["pf-worker-1"]
        return st
    wait_for(lambda: worker()["Uid"].split() == ["0"] * 4, 5,
             "the worker back to the daemon's uid")
    st = worker()
    assert st["Gid"].split() == ["0"] * 4, st["Gid"]
    assert "61234" not in st["Groups"].split(), st["Groups"]
    # A body the client is slow to take: the worker waits on the socket, as
    # the daemon, while the answer is in flight.
    p = runner.popen_pfp(a, daemon.sock, "get", "big", "--stall-after", "65536")
    time.sleep(1.5)
    st = worker()
    assert p.poll() is None, "the slow client should still be reading"
    assert st["Uid"].split() == ["0"] * 4, st["Uid"]
    p.kill()


def test_one_uid_with_and_without_a_group_at_once_on_one_worker(daemon, runner):
    """The same uid and gid, once with a supplementary group and once
    without, pipelining at the same time on one worker: the held record must
    tell them apart by the group list alone, request by request."""
    need_root()
    daemon.set("server", "workers", 1)
    without = User(61002, 61002, ())
    with_g = User(61002, 61002, (61100,))
    daemon.put("own", b"the uid's own\n" * 50, mode=0o600, uid=61002, gid=61002)
    daemon.put("g", b"the group's\n" * 50, mode=0o040, uid=0, gid=61100)
    daemon.start()
    n = 400
    procs = {who: runner.popen_pfp(u, daemon.sock, "get", *(["own", "g"] * n))
             for who, u in (("without", without), ("with", with_g))}
    got = {}
    for who, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode in (0, 3), err
        got[who] = [json.loads(l)["name"] for l in out.decode().splitlines() if l.strip()]
    assert got["without"] == ["OK", "EACCES"] * n
    assert got["with"] == ["OK", "OK"] * n

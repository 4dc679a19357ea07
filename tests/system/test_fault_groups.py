"""Fault injection: a client in a few thousand supplementary groups (issue
11, item 3). Its groups come from the kernel (SO_PEERGROUPS) and are set on
the worker thread for each request (SYS_setgroups, which sorts them), so
its requests cost more than others'; they must cost OTHER users little: the
p99 latency of another user's requests while it hammers the daemon is at
most twice the p99 while a client of the same shape but one group hammers.

The baseline is that same hammer, not an idle daemon: on a 2-core machine
any busy client raises others' latency, and what is measured here is what
the groups add. The margin is generous against a loaded machine: the worst
of two rounds with one group against the best of two with many."""

import json
import time

import pytest

from conftest import UID_C, User, need_root

G = 63999  # the group that opens the file, last of the many
MANY = tuple(range(64000, 64000 + 2999)) + (G,)
SAMPLES = 250  # p99 = the 3rd worst


def p99(xs):
    return sorted(xs)[int(len(xs) * 0.99) - 1]


def latencies(daemon, n):
    """Seconds for each of n GETs, each on a new connection (as the CLI
    does), as root: another user than the hammer."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        with daemon.conn(timeout=30) as c:
            r = c.get("f")
        out.append(time.perf_counter() - t0)
        assert r.name == "OK", r
    return out


@pytest.mark.pf_timeout(120)
@pytest.mark.xfail(strict=True, reason="each request of a 3000-group client costs its worker "
                   "~2 ms in the kernel's sort of SYS_setgroups (identity_enter); others wait "
                   "behind it: p99 ~15x (reported to the lead)")
def test_many_groups_client_costs_others_little(daemon, runner):
    need_root()
    daemon.put("f", b"x" * 4096)
    daemon.put("g", b"y" * 4096, mode=0o640, gid=G)  # only through group G
    daemon.set("server", "workers", "2")
    daemon.start()
    spec = json.dumps([{"path": "g", "status": "OK", "size": 4096}])
    latencies(daemon, 50)  # warm up
    idle = p99(latencies(daemon, SAMPLES))
    got = {"few": [], "many": []}
    for _ in range(2):
        for kind, groups in (("few", (G,)), ("many", MANY)):
            hammer = runner.popen_pfp(User(UID_C, UID_C, groups), daemon.sock, "load",
                                      "--spec", spec, "--conns", "4", "--requests", "10000000",
                                      "--pipeline", "4")
            try:
                time.sleep(0.5)  # connected and busy
                assert hammer.poll() is None, hammer.stderr.read()
                got[kind].append(p99(latencies(daemon, SAMPLES)))
            finally:
                hammer.kill()
                hammer.wait(10)
    # the hammer was served, through its last group, and only that
    lines = [l for l in daemon.log_lines() if b" uid=%d " % UID_C in l]
    ok = [l for l in lines if b" status=OK " in l]
    assert len(ok) > 100, len(ok)
    assert all(b" status=OK " in l or b" status=ABANDONED " in l for l in lines)
    figures = "p99 ms: idle %.1f, one group %s, %d groups %s" % (
        idle * 1e3, ["%.1f" % (x * 1e3) for x in got["few"]], len(MANY),
        ["%.1f" % (x * 1e3) for x in got["many"]])
    print(figures)
    assert min(got["many"]) <= 2 * max(got["few"]), figures

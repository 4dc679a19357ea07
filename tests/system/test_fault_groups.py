"""Fault injection: a client in a few thousand supplementary groups (issue
11, item 3). Its groups come from the kernel (SO_PEERGROUPS) and are set on
the worker thread at each switch into its identity (SYS_setgroups, which
copies and sorts them: ~1.5 ms for 3,000 here), so its requests cost more
than others'; they must cost OTHER users little, which the acceptor
ensures by keeping such clients on workers of their own: the p99 latency of another user's requests while it hammers the daemon is at
most twice the p99 while a client of the same shape but one group hammers.

The baseline is that same hammer, not an idle daemon: on a 2-core machine
any busy client raises others' latency, and what is measured here is what
the groups add. Other agents' load on the machine moves a round's p99 by
up to 5x, so the rounds alternate (one group, many, three times) and the
median round of each kind is compared. Both the p99 the client sees and the
p99 of the access log's duration_us (time in the daemon, which the load of
other processes moves far less) must hold the bound."""

import json
import time

import pytest

from conftest import UID_C, User, need_root, wait_for

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


def in_daemon(daemon, first, n):
    """Seconds the daemon took over root's GETs of "f" logged from line
    `first` on (duration_us: from the request's first byte to its last byte
    sent, so the wait for the worker's turn, without the client's own
    scheduling); waits for n of them."""
    def lines():
        return [l for l in daemon.log_lines()[first:] if b" uid=0 " in l and b' path="f" ' in l]
    wait_for(lambda: len(lines()) >= n, 15, "%d log lines" % n)
    return [int(l.rsplit(b" duration_us=", 1)[1]) / 1e6 for l in lines()]


def ms(xs):
    return ["%.1f" % (x * 1e3) for x in xs]


@pytest.mark.pf_timeout(120)
def test_many_groups_client_costs_others_little(daemon, runner):
    need_root()
    daemon.put("f", b"x" * 4096)
    daemon.put("g", b"y" * 4096, mode=0o640, gid=G)  # only through group G
    daemon.set("server", "workers", "2")
    daemon.start()
    spec = json.dumps([{"path": "g", "status": "OK", "size": 4096}])
    latencies(daemon, 50)  # warm up
    idle = p99(latencies(daemon, SAMPLES))
    client = {"few": [], "many": []}  # p99 seen by the client, per round
    daemon_side = {"few": [], "many": []}  # p99 of duration_us, per round
    for _ in range(3):
        for kind, groups in (("few", (G,)), ("many", MANY)):
            hammer = runner.popen_pfp(User(UID_C, UID_C, groups), daemon.sock, "load",
                                      "--spec", spec, "--conns", "4", "--requests", "10000000",
                                      "--pipeline", "4")
            try:
                time.sleep(0.5)  # connected and busy
                assert hammer.poll() is None, hammer.stderr.read()
                first = len(daemon.log_lines())
                client[kind].append(p99(latencies(daemon, SAMPLES)))
                daemon_side[kind].append(p99(in_daemon(daemon, first, SAMPLES)))
            finally:
                hammer.kill()
                hammer.wait(10)
    # the hammer was served, through its last group, and only that
    lines = [l for l in daemon.log_lines() if b" uid=%d " % UID_C in l]
    ok = [l for l in lines if b" status=OK " in l]
    assert len(ok) > 100, len(ok)
    assert all(b" status=OK " in l or b" status=ABANDONED " in l for l in lines)
    figures = ("p99 ms, idle %.1f; seen by the client: one group %s, %d groups %s; in the "
               "daemon: one group %s, %d groups %s" % (
                   idle * 1e3, ms(client["few"]), len(MANY), ms(client["many"]),
                   ms(daemon_side["few"]), len(MANY), ms(daemon_side["many"])))
    print(figures)
    # the median round of each kind; in the daemon, where a p99 of a few
    # hundred microseconds doubles with any hiccup, 2 ms more are allowed
    assert sorted(daemon_side["many"])[1] <= 2 * sorted(daemon_side["few"])[1] + 0.002, figures
    assert sorted(client["many"])[1] <= 2 * sorted(client["few"])[1], figures


@pytest.mark.pf_timeout(60)
def test_many_groups_client_gets_a_worker_of_its_own(daemon, runner):
    """How the bound above is kept: the acceptor counts a peer's groups at
    accept, and a client in more than 64 groups is kept off the workers
    that serve the others (and they off its). Its four connections gather on
    one worker of three; root's connections, made while it hammers, go to
    the other two, and none to its worker. A client in one group is not set
    apart: its connections spread like anyone's."""
    need_root()
    daemon.put("f", b"x" * 4096)
    daemon.put("g", b"y" * 4096, mode=0o640, gid=G)
    daemon.set("server", "workers", "3")
    daemon.start()
    spec = json.dumps([{"path": "g", "status": "OK", "size": 4096}])

    def workers_of(uid, first):
        return {int(l.split(b" worker=", 1)[1].split(b" ", 1)[0])
                for l in daemon.log_lines()[first:] if b" uid=%d " % uid in l}

    seen = {}
    for kind, groups in (("many", MANY), ("few", (G,))):
        first = len(daemon.log_lines())
        hammer = runner.popen_pfp(User(UID_C, UID_C, groups), daemon.sock, "load",
                                  "--spec", spec, "--conns", "4", "--requests", "10000000",
                                  "--pipeline", "4")
        try:
            wait_for(lambda: len(daemon.log_lines()) - first > 200, 15, "the hammer served")
            mark = len(daemon.log_lines())
            latencies(daemon, 30)
            in_daemon(daemon, mark, 30)  # root's lines written (asynchronously)
            seen[kind] = (workers_of(UID_C, first), workers_of(0, mark))
        finally:
            hammer.kill()
            hammer.wait(10)
        # its connections closed: no new line of it for a while
        last = [-1]

        def quiet():
            n, last[0] = last[0], len(daemon.log_lines())
            time.sleep(0.2)
            return n == last[0]
        wait_for(quiet, 10, "the hammer's connections closed")
    many, root = seen["many"]
    assert len(many) == 1 and not (many & root) and root, seen
    few, _ = seen["few"]
    assert len(few) > 1, seen

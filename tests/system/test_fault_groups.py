"""Fault injection: a client in a few thousand supplementary groups (issue
11, item 3). Its groups come from the kernel (SO_PEERGROUPS) and are set on
the worker thread at each switch into its identity (SYS_setgroups, which
copies and sorts them: ~1.5 ms for 3,000 here), so its requests cost more
than others'; they must cost OTHER users little, which the acceptor
ensures by keeping such clients (over 512 groups) on workers of their own:
the p99 latency of another user's requests while it hammers the daemon is at
most twice the p99 while a client of the same shape but one group hammers.

The baseline is that same hammer, not an idle daemon: on a 2-core machine
any busy client raises others' latency, and what is measured here is what
the groups add. Other agents' load on the machine moves a round's p99 by
up to 5x, so the rounds alternate (one group, many, three times) and the
median round of each kind is compared. Both the p99 the client sees and the
p99 of the access log's duration_us (time in the daemon, which the load of
other processes moves far less) must hold the bound."""

import json
import os
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


def sockets(daemon):
    """The daemon's open sockets: its listener and its connections."""
    n = 0
    fds = "/proc/%d/fd" % daemon.proc.pid
    for fd in os.listdir(fds):
        try:
            n += os.readlink(os.path.join(fds, fd)).startswith("socket:")
        except FileNotFoundError:
            pass
    return n


def hammering(runner, daemon, groups, conns, idle_sockets, path="g"):
    """A client of UID_C in groups keeping conns connections busy asking
    for path; on exit it is killed and the daemon has closed every one of
    them, so the next round starts with no worker serving it."""
    spec = json.dumps([{"path": path, "status": "OK", "size": 4096}])

    class Hammer:
        def __enter__(self):
            self.p = runner.popen_pfp(User(UID_C, UID_C, groups), daemon.sock, "load",
                                      "--spec", spec, "--conns", str(conns),
                                      "--requests", "10000000", "--pipeline", "4")
            return self.p

        def __exit__(self, *exc):
            self.p.kill()
            self.p.wait(10)
            wait_for(lambda: sockets(daemon) == idle_sockets, 10,
                     "the daemon to close the hammer's connections")
    return Hammer()


def started(daemon, workers, *files):
    """The daemon with `workers` workers serving "f" to anyone and each of
    files (4 KiB) only through group G; returns its sockets before any
    client."""
    need_root()
    daemon.put("f", b"x" * 4096)
    for name in files:
        daemon.put(name, b"y" * 4096, mode=0o640, gid=G)
    daemon.set("server", "workers", str(workers))
    daemon.start()
    return sockets(daemon)


def ms(xs):
    return ["%.1f" % (x * 1e3) for x in xs]


@pytest.mark.pf_timeout(120)
def test_many_groups_client_costs_others_little(daemon, runner):
    idle_sockets = started(daemon, 2, "g")
    latencies(daemon, 50)  # warm up
    idle = p99(latencies(daemon, SAMPLES))
    client = {"few": [], "many": []}  # p99 seen by the client, per round
    daemon_side = {"few": [], "many": []}  # p99 of duration_us, per round
    for _ in range(3):
        for kind, groups in (("few", (G,)), ("many", MANY)):
            with hammering(runner, daemon, groups, 4, idle_sockets) as hammer:
                time.sleep(0.5)  # connected and busy
                assert hammer.poll() is None, hammer.stderr.read()
                first = len(daemon.log_lines())
                client[kind].append(p99(latencies(daemon, SAMPLES)))
                daemon_side[kind].append(p99(in_daemon(daemon, first, SAMPLES)))
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
    accept, and a client in more than 512 groups is kept off the workers
    that serve the others (and they off its). Its four connections gather on
    one worker of three; root's connections, made while it hammers, go to
    the other two, and none to its worker. A client in one group is not set
    apart: its four connections spread over all three workers (which they
    would not if a worker still counted the first client as served)."""
    idle_sockets = started(daemon, 3, "g")
    seen = {}
    # each round asks for a file of its own: the log lines of the round
    # before may still be on their way (written asynchronously)
    for n, (kind, groups) in enumerate((("many", MANY), ("few", (G,)), ("many again", MANY))):
        path = "g%d" % n
        daemon.put(path, b"y" * 4096, mode=0o640, gid=G)
        first = len(daemon.log_lines())
        with hammering(runner, daemon, groups, 4, idle_sockets, path):
            wait_for(lambda: len([l for l in daemon.log_lines()[first:]
                                  if b' path="%s" ' % path.encode() in l]) > 200,
                     15, "the hammer served")
            mark = len(daemon.log_lines())
            latencies(daemon, 30)
            in_daemon(daemon, mark, 30)  # root's lines written (asynchronously)
            seen[kind] = (workers_of(daemon, UID_C, first, path), workers_of(daemon, 0, mark))
    for kind in ("many", "many again"):
        many, root = seen[kind]
        assert len(many) == 1 and not (many & root) and root, seen
    assert seen["few"][0] == {1, 2, 3}, seen


@pytest.mark.pf_timeout(60)
def test_many_groups_clients_take_at_most_half_the_workers(daemon, runner):
    """However many connections a client in many groups opens (a user with
    subordinate gids can make itself one), it gets at most half the workers:
    with 4 workers, its 24 connections (far past the balance's weight of 8)
    land on 2 of them, and root's connections on the other 2."""
    idle_sockets = started(daemon, 4, "g")
    first = len(daemon.log_lines())
    with hammering(runner, daemon, MANY, 24, idle_sockets):
        wait_for(lambda: len(daemon.log_lines()) - first > 500, 15, "the hammer served")
        time.sleep(0.5)  # all 24 connected
        mark = len(daemon.log_lines())
        latencies(daemon, 40)
        in_daemon(daemon, mark, 40)
        many, root = workers_of(daemon, UID_C, first), workers_of(daemon, 0, mark)
    assert len(many) == 2 and not (many & root) and len(root) == 2, (many, root)


@pytest.mark.pf_timeout(60)
def test_cheap_clients_keep_off_its_worker(daemon, runner):
    """With the load even, other users still keep off the worker of a
    client in many groups: beside its one connection, a one-group client's
    three connections all go to the other worker of two (by load alone the
    second or third would join it)."""
    idle_sockets = started(daemon, 2, "g", "h")
    first = len(daemon.log_lines())

    def served(path, n):
        return len([l for l in daemon.log_lines()[first:]
                    if b' path="%s" ' % path.encode() in l]) > n
    with hammering(runner, daemon, MANY, 1, idle_sockets, "g"):
        wait_for(lambda: served("g", 50), 15, "the many-groups client served")
        with hammering(runner, daemon, (G,), 3, idle_sockets + 1, "h"):
            wait_for(lambda: served("h", 300), 15, "the one-group client served")
            time.sleep(0.3)  # all three connected and served
            mark = len(daemon.log_lines())
            wait_for(lambda: len(daemon.log_lines()) > mark + 300, 15, "more lines")
            many = workers_of(daemon, UID_C, mark, "g")
            few = workers_of(daemon, UID_C, mark, "h")
    assert len(many) == 1 and len(few) == 1 and not (many & few), (many, few)


def workers_of(daemon, uid, first, path=None):
    """The workers that served uid (path, if given) from log line first on."""
    return {int(l.split(b" worker=", 1)[1].split(b" ", 1)[0])
            for l in daemon.log_lines()[first:] if b" uid=%d " % uid in l and
            (path is None or b' path="%s" ' % path.encode() in l)}

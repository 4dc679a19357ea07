"""Fault injection: misbehaving clients, all at once (issue 11, item 3).
Clients that connect and vanish, send half a request header, send a GET and
never read the body, read the body one byte a second, or pipeline 100
requests and close. Meanwhile and afterwards a normal client is served at
once; the daemon's memory and descriptors come back; and each case is in
the access log as the docs say: no line for a connection that sent nothing,
EPROTO for half a header (at request_timeout), a line with the bytes sent
for a reader cut at send_timeout, one line per pipelined request the daemon
read (answered or ABANDONED). Each kind alone: test_disconnect.py,
test_timeouts.py, test_resources.py."""

import os
import threading
import time

import pytest

import pfp
from conftest import wait_for
from test_disconnect import ABANDONED, log_records
from test_resources import fds, rss_kib

N = 16  # clients of each kind
BIG = 8 << 20  # more than the socket buffers hold


class Normal(threading.Thread):
    """A well-behaved client: one GET of "small" every 50 ms on a new
    connection, each timed."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.times = []
        self.error = None
        self.halt = threading.Event()

    def run(self):
        try:
            while not self.halt.is_set():
                t0 = time.monotonic()
                with pfp.Conn(self.sock, timeout=30) as c:
                    r = c.get("small")
                assert (r.name, r.body) == ("OK", b"s" * 1000), r
                self.times.append(time.monotonic() - t0)
                self.halt.wait(0.05)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def trickle(c, seconds, stop):
    """Read one byte a second for `seconds` (or until the daemon closes)."""
    got = 0
    try:
        for _ in range(seconds):
            if stop.wait(1.0):
                break
            b = c.sock.recv(1)
            if not b:
                break
            got += 1
    except OSError:
        pass
    return got


@pytest.mark.pf_timeout(90)
def test_misbehaving_clients_leave_the_daemon_healthy_and_logged(daemon):
    daemon.put("big", os.urandom(BIG))
    for name in ("big-noread", "big-trickle"):
        os.link(daemon.root / "big", daemon.root / name)
    daemon.put("small", b"s" * 1000)
    daemon.put("small-pipe", b"p" * 1000)
    daemon.set("server", "workers", "2")
    daemon.set("server", "request_timeout", "1s")
    daemon.set("server", "send_timeout", "1s")
    daemon.set("server", "max_connections_per_user", "0")  # all are root's
    daemon.start()
    pid = daemon.proc.pid
    for _ in range(20):  # warm up: buffers, thread stacks, the user cache
        assert daemon.get("small").name == "OK"
        assert daemon.get("big", keep=False).received == BIG
    base_rss, base_fds = rss_kib(pid), fds(pid)
    normal = Normal(daemon.sock)
    normal.start()
    held, stop = [], threading.Event()
    trickled = []
    try:
        # connect and vanish
        for _ in range(N):
            daemon.conn().close()
        # half a header, held open
        for _ in range(N):
            c = daemon.conn(timeout=30)
            c.send(pfp.get_request("small")[:10])
            held.append(c)
        # a GET whose body is never read
        for _ in range(N):
            c = daemon.conn(timeout=30)
            c.send(pfp.get_request("big-noread"))
            held.append(c)
        # a body read one byte a second
        tricklers = []
        for _ in range(N):
            c = daemon.conn(timeout=30)
            c.send(pfp.get_request("big-trickle"))
            held.append(c)
            t = threading.Thread(target=lambda c=c: trickled.append(trickle(c, 4, stop)),
                                 daemon=True)
            t.start()
            tricklers.append(t)
        # 100 pipelined requests, then gone
        for _ in range(N):
            with daemon.conn() as c:
                c.send(pfp.get_request("small-pipe") * 100)
        peak_rss = rss_kib(pid)
        # every half header has its EPROTO (request_timeout), every stalled
        # reader is cut (send_timeout)
        wait_for(lambda: sum(1 for x in log_records(daemon) if x["status"] == "EPROTO") == N
                 and sum(1 for x in log_records(daemon) if x["path"].startswith(b"big-")) == 2 * N,
                 20, "a line for each half header and each stalled reader")
        for t in tricklers:
            t.join(10)
        stop.set()
    finally:
        stop.set()
        for c in held:
            c.close()
        normal.halt.set()
        normal.join(30)
    assert normal.error is None, normal.error
    # served at once throughout (generous: a loaded 2-core machine)
    assert len(normal.times) >= 20, len(normal.times)
    assert max(normal.times) < 2.0, sorted(normal.times)[-5:]
    after = time.monotonic()
    for _ in range(5):
        with daemon.conn() as c:
            assert c.get("small").name == "OK"
    assert time.monotonic() - after < 2.0
    # memory and descriptors bounded: back where they were, give or take
    wait_for(lambda: fds(pid) <= base_fds, 10,
             "descriptors back to %d (now %d)" % (base_fds, fds(pid)))
    grown = rss_kib(pid) - base_rss
    print("RSS KiB: base %d, peak +%d, after +%d; normal client: %d requests, max %.1f ms" % (
        base_rss, peak_rss - base_rss, grown, len(normal.times), max(normal.times) * 1e3))
    assert peak_rss - base_rss < 64 * 1024, "RSS grew by %d KiB" % (peak_rss - base_rss)
    assert grown < 32 * 1024, "RSS grew by %d KiB and stayed" % grown
    assert daemon.stop() == 0
    # each case logged as the docs say
    recs = log_records(daemon)
    by = {}
    for x in recs:
        by.setdefault(x["path"], []).append(x)
    assert len(by[b"small"]) == len(normal.times) + 20 + 5
    assert all(x["status"] == "OK" for x in by[b"small"])
    eproto = [x for x in recs if x["status"] == "EPROTO"]
    assert len(eproto) == N and all(x["path"] == b"" and x["bytes"] == 0 for x in eproto), eproto
    for name in (b"big-noread", b"big-trickle"):
        xs = by[name]
        assert len(xs) == N, (name, len(xs))
        # cut at send_timeout: status OK (the header went out), fewer bytes
        assert all(x["status"] == "OK" and 0 < x["bytes"] < BIG and x["size"] == BIG
                   for x in xs), xs
    assert len(trickled) == N and min(trickled) >= 1, trickled
    pipe = {}
    for x in by[b"small-pipe"]:
        pipe.setdefault(x["conn"], []).append(x)
    assert len(pipe) == N, len(pipe)
    for conn, xs in pipe.items():
        # one line per request the daemon read, each answered or abandoned
        assert 1 <= len(xs) <= 100, (conn, len(xs))
        assert all(x["status"] in ("OK",) + ABANDONED for x in xs), xs
    # nothing else: a connection that sent nothing has no line
    assert len(recs) == len(by[b"small"]) + 20 + N + 2 * N + len(by[b"small-pipe"]), \
        sorted(by)
    assert "pipefiled: error:" not in daemon.stderr(), daemon.stderr()

"""SIGTERM/SIGINT in detail. Each connection finishes the response in
flight AND answers the complete requests it has already received (pipelined
behind it), in order, byte-exact, then closes; a connection holding part of
a request is closed without an answer and that request is logged once as
abandoned (status EPROTO, bytes 0, op as far as it was decoded); idle
connections close without a line; the access log has exactly one line per
request; exit 0. When the grace period runs out, a response still in flight
is cut off and the requests read behind it are logged as abandoned. A second
SIGTERM/SIGINT during the grace period ends the process at once (the default
action is back).

"Received" is made certain, not assumed: SIOCOUTQ on the client's socket is
0 only once the daemon has read every byte the client sent."""

import fcntl
import hashlib
import os
import signal
import struct
import termios
import time

import pytest

import pfp
from conftest import parse_log_line, wait_for

SIOCOUTQ = termios.TIOCOUTQ  # the same ioctl number on Linux
BIG = (48 << 20) + 12345  # far more than the socket buffers hold
MIB = 1 << 20


def unread_by_peer(c):
    """Bytes (memory) this client sent that the daemon has not read yet."""
    return struct.unpack("i", fcntl.ioctl(c.sock.fileno(), SIOCOUTQ, struct.pack("i", 0)))[0]


def wait_received(conns, timeout=10):
    for c in conns:
        wait_for(lambda: unread_by_peer(c) == 0, timeout, "the daemon to read what was sent")


def sig_caught(pid, sig):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    raise AssertionError("no SigCgt in /proc/%d/status" % pid)


def make_files(d):
    big = os.urandom(BIG)
    d.put("big.bin", big)
    small = bytes(range(256)) * 16 + b"tail"
    d.put("small", small)
    d.put("one", b"1")
    return big, small


@pytest.mark.pf_timeout(120)
@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_answers_received_requests_abandons_partial_closes_idle(daemon, workers, sig):
    big, small = make_files(daemon)
    daemon.set("server", "workers", workers)
    daemon.set("server", "shutdown_timeout", "60s")
    daemon.set("server", "send_timeout", "60s")
    daemon.start()
    requests = 0

    # (a) a large transfer in flight with 3 complete requests behind it
    busy = daemon.conn(timeout=30)
    busy.send(pfp.get_request("big.bin") + pfp.get_request("small") +
              pfp.stat_request("one") + pfp.get_request("small", offset=100, length=50))
    requests += 4
    r_big = busy.read_header()
    assert r_big.name == "OK" and r_big.body_len == BIG, r_big
    busy.read_body(r_big, keep=True, limit=MIB)
    head = r_big.body
    assert head == big[:MIB]

    # (b) half a request: 10 bytes (op not yet known) and a whole STAT
    # header with half its path (op known, path not)
    part1 = daemon.conn()
    part1.send(pfp.get_request("small")[:10])
    part2 = daemon.conn()
    part2.send(pfp.stat_request("abcdefghij")[:27])
    # a served request, then half of the next
    mixed = daemon.conn()
    assert mixed.get("one").body == b"1"
    mixed.send(pfp.get_request("small")[:5])
    requests += 3 + 1

    # (c) idle: fresh ones and one that was used
    idle = [daemon.conn() for _ in range(3)]
    used = daemon.conn()
    assert used.get("small").body == small
    requests += 1
    idle.append(used)

    wait_received([busy, part1, part2, mixed] + idle)
    # every line so far is written before the stop
    wait_for(lambda: len(daemon.log_lines()) == 2, 10, "the two finished requests' lines")

    daemon.kill(sig)
    for c in [part1, part2, mixed] + idle:
        assert c.closed_by_peer(timeout=10), "connection not closed (no bytes either)"
    assert not daemon.sock.exists(), "socket file still there after the stop began"
    assert daemon.running(), "exited with a response in flight"

    # the response in flight completes, then the 3 behind it, in order
    rest = BIG - MIB
    r_big.body_len = rest
    busy.read_body(r_big, keep=True)
    assert hashlib.sha256(head + r_big.body).hexdigest() == hashlib.sha256(big).hexdigest()
    r2 = busy.read_response()
    assert (r2.name, r2.size, r2.body) == ("OK", len(small), small), r2
    r3 = busy.read_response()
    assert (r3.name, r3.size, r3.body_len, r3.body) == ("OK", 1, 0, b""), r3
    r4 = busy.read_response()
    assert (r4.name, r4.size, r4.body_len, r4.body) == ("OK", len(small), 50, small[100:150]), r4
    assert busy.closed_by_peer(timeout=10), "not closed after the requests received"
    for c in [busy, part1, part2, mixed] + idle:
        c.close()

    rc = daemon.wait_exit(20)
    daemon.stopped_rc = rc
    assert rc == 0, daemon.stderr()
    err = daemon.stderr().splitlines()
    assert err[-1] == "pipefiled: info: stopped", err
    assert not any("shutdown timeout" in l for l in err), err

    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    assert len(recs) == requests, recs
    by_conn = {}
    for r in recs:
        by_conn.setdefault(r["conn"], []).append(r)
    # busy: 4 lines in request order
    b = [(r["op"], r["path"], r["status"], r["bytes"]) for r in by_conn[1]]
    assert b == [("GET", b"big.bin", "OK", BIG), ("GET", b"small", "OK", len(small)),
                 ("STAT", b"one", "OK", 0), ("GET", b"small", "OK", 50)], b
    abandoned = [r for r in recs if r["status"] == "EPROTO"]
    assert sorted((r["conn"], r["op"], r["path"], r["bytes"], r["size"]) for r in abandoned) == [
        (2, "-", b"", 0, 0), (3, "STAT", b"", 0, 0), (4, "-", b"", 0, 0)], abandoned
    assert [r["status"] for r in by_conn[4]] == ["OK", "EPROTO"]
    # idle connections: no line (only `used`'s one request)
    assert not any(r["conn"] in (5, 6, 7) for r in recs), recs
    assert [r["status"] for r in by_conn[8]] == ["OK"]


@pytest.mark.pf_timeout(60)
def test_stop_with_only_partial_and_idle_connections_is_prompt(daemon):
    """Nothing in flight: the stop does not wait for the partial requests'
    request_timeout nor the idle_timeout; exit 0 at once, one line per
    partial request."""
    daemon.put("f", b"x")
    daemon.set("server", "request_timeout", "60s")
    daemon.set("server", "idle_timeout", "60s")
    daemon.set("server", "shutdown_timeout", "60s")
    daemon.start()
    parts = []
    for i in range(10):
        c = daemon.conn()
        c.send(pfp.get_request("f%d" % i)[:1 + i * 2])  # 1..19 bytes
        parts.append(c)
    idle = [daemon.conn() for _ in range(10)]
    wait_received(parts + idle)
    t0 = time.monotonic()
    daemon.kill(signal.SIGTERM)
    rc = daemon.wait_exit(10)
    took = time.monotonic() - t0
    daemon.stopped_rc = rc
    assert rc == 0, daemon.stderr()
    assert took < 3, took
    for c in parts + idle:
        assert c.closed_by_peer(timeout=5)
        c.close()
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    assert len(recs) == 10, recs
    assert all((r["status"], r["op"], r["bytes"]) == ("EPROTO", "-", 0) for r in recs), recs


@pytest.mark.pf_timeout(60)
@pytest.mark.parametrize("first,second", [
    (signal.SIGTERM, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT),
    (signal.SIGINT, signal.SIGTERM)], ids=["TERM-TERM", "TERM-INT", "INT-TERM"])
def test_second_signal_during_grace_kills_at_once(daemon, first, second):
    big, _ = make_files(daemon)
    daemon.set("server", "shutdown_timeout", "60s")
    daemon.set("server", "send_timeout", "60s")
    daemon.start()
    pid = daemon.proc.pid
    assert sig_caught(pid, signal.SIGTERM) and sig_caught(pid, signal.SIGINT)
    stalled = daemon.conn(timeout=30)
    try:
        stalled.send(pfp.get_request("big.bin"))
        r = stalled.read_header()
        stalled.read_body(r, keep=False, limit=MIB)  # then stop reading
        daemon.kill(first)
        wait_for(lambda: "stopping:" in daemon.stderr(), 10, "the stopping line")
        # the handlers are gone: the default action is back for both
        wait_for(lambda: not sig_caught(pid, signal.SIGTERM) and
                 not sig_caught(pid, signal.SIGINT), 10, "the default action to be back")
        assert not daemon.sock.exists()
        time.sleep(0.3)
        assert daemon.running(), "exited though a response is in flight"
        t0 = time.monotonic()
        daemon.kill(second)
        rc = daemon.wait_exit(5)
        took = time.monotonic() - t0
        assert rc == -second, (rc, daemon.stderr())
        assert took < 2, took
        daemon.stopped_rc = rc
        daemon.expect_exit = True
        assert "stopped" not in daemon.stderr()
        assert not daemon.sock.exists()
    finally:
        stalled.close()


@pytest.mark.pf_timeout(60)
def test_stop_never_logs_a_whole_request_as_abandoned(daemon):
    """More pipelined requests than one read takes (199 x 23 bytes behind a
    large transfer): whatever the daemon answers at stop, it must not log a
    request the client sent whole as a malformed/abandoned one, and every
    line must stand for an answer the client got."""
    big, _ = make_files(daemon)
    daemon.put("s", b"small")
    daemon.set("server", "workers", 1)
    daemon.set("server", "shutdown_timeout", "30s")
    daemon.start()
    c = daemon.conn(timeout=30)
    c.send(pfp.get_request("big.bin") + pfp.get_request("s") * 199)
    r = c.read_header()
    c.read_body(r, keep=False, limit=MIB)
    # the daemon has read what fits in its buffer; it reads no more while sending
    time.sleep(0.3)
    daemon.kill(signal.SIGTERM)
    wait_for(lambda: "stopping:" in daemon.stderr(), 10, "the stopping line")
    time.sleep(0.3)
    r.body_len -= MIB
    c.read_body(r, keep=False)
    answers = 1
    try:
        while True:
            assert c.read_response().body == b"small"
            answers += 1
    except (pfp.ProtocolError, OSError):
        pass
    c.close()
    rc = daemon.wait_exit(20)
    daemon.stopped_rc = rc
    assert rc == 0
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    assert [x for x in recs if x["status"] != "OK"] == [], recs[-3:]
    assert len(recs) == answers, (len(recs), answers)


@pytest.mark.pf_timeout(60)
def test_grace_over_logs_the_requests_never_answered(daemon):
    """A reader that stops with requests pipelined behind its transfer,
    and a stop whose grace runs out: the daemon gives up on it, and the
    requests it read but never answered are each logged as abandoned, after
    the line of the partial transfer."""
    from test_disconnect import ABANDONED, log_records
    make_files(daemon)
    daemon.set("server", "shutdown_timeout", "1s")
    daemon.set("server", "send_timeout", "60s")
    daemon.start()
    c = daemon.conn(timeout=30)
    try:
        c.send(pfp.get_request("big.bin") + pfp.get_request("small") * 3 + pfp.stat_request("one"))
        r = c.read_header()
        c.read_body(r, keep=False, limit=MIB)  # then stop reading
        wait_received([c])
        daemon.kill(signal.SIGTERM)
        rc = daemon.wait_exit(20)
        daemon.stopped_rc = rc
        assert rc == 0, daemon.stderr()
        assert "shutdown timeout" in daemon.stderr()
    finally:
        c.close()
    recs = log_records(daemon)
    assert [(x["op"], x["path"]) for x in recs] == [("GET", b"big.bin")] + \
        [("GET", b"small")] * 3 + [("STAT", b"one")], recs
    assert recs[0]["status"] == "OK" and MIB <= recs[0]["bytes"] < BIG, recs[0]
    assert all(x["status"] in ABANDONED and x["bytes"] == 0 for x in recs[1:]), recs

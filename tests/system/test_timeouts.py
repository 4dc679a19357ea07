"""Timeouts: a partial request is answered EPROTO and closed at
request_timeout, even when trickled a byte at a time (slow loris); an idle
connection is closed silently at idle_timeout; a reader that stops reading is
dropped at send_timeout, and the requests it had pipelined are logged as
abandoned. None of them disturbs other clients."""

import threading
import time

import pytest

import pfp
from conftest import parse_log_line, wait_for


def test_partial_request_closed_at_request_timeout(daemon):
    daemon.put("f", b"data")
    daemon.set("server", "request_timeout", "500ms")
    daemon.set("server", "idle_timeout", "30s")
    daemon.start()
    with daemon.conn(timeout=10) as c:
        t0 = time.monotonic()
        c.send(pfp.get_request("f")[:10])
        r = c.read_response()
        elapsed = time.monotonic() - t0
        assert r.problems() == []
        assert r.name == "EPROTO", r
        assert "time" in r.message.lower(), r.message
        assert 0.45 <= elapsed < 5.0, elapsed
        assert c.closed_by_peer()
    assert daemon.get("f").body == b"data"
    assert daemon.stop() == 0
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    assert [r["status"] for r in recs] == ["EPROTO", "OK"]


def test_slow_loris_trickle_does_not_extend_the_timeout(daemon):
    """One byte every 100 ms: the whole request would take ~2.7 s; the
    timeout runs from the first byte, so EPROTO comes at ~0.5 s."""
    daemon.put("f", b"data")
    daemon.set("server", "request_timeout", "500ms")
    daemon.start()
    req = pfp.get_request("f" * 5)
    c = daemon.conn(timeout=10)
    sent = [0]
    stop = threading.Event()

    def trickle():
        try:
            for b in req:
                if stop.is_set():
                    return
                c.sock.send(bytes([b]))
                sent[0] += 1
                stop.wait(0.1)
        except OSError:
            pass

    t = threading.Thread(target=trickle)
    t0 = time.monotonic()
    t.start()
    try:
        r = c.read_response()
        elapsed = time.monotonic() - t0
        assert r.name == "EPROTO", r
        assert sent[0] < len(req), "answered only after the whole request was sent"
        assert 0.45 <= elapsed < 2.5, elapsed
        assert c.closed_by_peer()
    finally:
        stop.set()
        t.join(10)
        c.close()
    assert daemon.get("f").body == b"data"


def test_many_slow_clients_do_not_block_others(daemon):
    daemon.put("f", b"data")
    daemon.set("server", "request_timeout", "3s")
    daemon.set("server", "workers", "1")
    daemon.start()
    slow = []
    try:
        for _ in range(50):
            c = daemon.conn(timeout=10)
            c.send(b"PF\x01")
            slow.append(c)
        t0 = time.monotonic()
        assert daemon.get("f").body == b"data"
        assert time.monotonic() - t0 < 2.5  # long before any slow one timed out
        for c in slow:
            assert c.read_response().name == "EPROTO"
            assert c.closed_by_peer()
    finally:
        for c in slow:
            c.close()


def test_idle_connection_closed_silently(daemon):
    daemon.put("f", b"data")
    daemon.set("server", "request_timeout", "500ms")
    daemon.set("server", "idle_timeout", "700ms")
    daemon.start()
    # never sends anything
    with daemon.conn(timeout=10) as c:
        t0 = time.monotonic()
        assert c.closed_by_peer(timeout=10), "idle connection not closed"
        elapsed = time.monotonic() - t0
        assert 0.6 <= elapsed < 5.0, elapsed
    # idle after a complete request
    with daemon.conn(timeout=10) as c:
        assert c.get("f").body == b"data"
        t0 = time.monotonic()
        assert c.closed_by_peer(timeout=10), "idle connection not closed"
        elapsed = time.monotonic() - t0
        assert 0.6 <= elapsed < 5.0, elapsed
    # a connection that keeps asking is not idle
    with daemon.conn(timeout=10) as c:
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            assert c.get("f").body == b"data"
            time.sleep(0.2)
    assert daemon.stop() == 0
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    assert recs and all(r["status"] == "OK" for r in recs), recs  # idle closes are not logged


@pytest.mark.pf_timeout(120)
def test_stalled_reader_dropped_at_send_timeout(daemon, bigfile):
    import os
    os.link(bigfile[0], daemon.root / "big.bin")
    daemon.put("f", b"data")
    daemon.set("server", "send_timeout", "1s")
    daemon.start()
    with daemon.conn(timeout=30) as c:
        c.send(pfp.get_request("big.bin"))
        r = c.read_header()
        c.read_body(r, keep=False, limit=1 << 20)
        # stop reading; the daemon gives up after send_timeout and logs it
        t0 = time.monotonic()
        wait_for(lambda: any(b"big.bin" in l for l in daemon.log_lines()), 15,
                 "the log line of the dropped transfer")
        assert time.monotonic() - t0 >= 0.9
        rest = r.body_len - (1 << 20)
        r.body_len = rest
        with pytest.raises(pfp.ShortBody):
            c.read_body(r, keep=False)
        assert daemon.get("f").body == b"data"
    line = [l for l in daemon.log_lines() if b"big.bin" in l][0]
    rec = parse_log_line(line, "text")
    assert (1 << 20) <= rec["bytes"] < bigfile[1], rec
    assert rec["size"] == bigfile[1]


@pytest.mark.pf_timeout(120)
def test_send_timeout_logs_the_requests_queued_behind(daemon, bigfile):
    """A reader that stops with 10 requests pipelined behind a transfer: at
    send_timeout the daemon gives up on the connection, and each of the 10
    (read, never answered) has its ABANDONED line after the partial one."""
    import os
    from test_disconnect import ABANDONED, log_records, unread_by_peer
    os.link(bigfile[0], daemon.root / "big.bin")
    daemon.put("f", b"data")
    daemon.set("server", "send_timeout", "1s")
    daemon.start()
    with daemon.conn(timeout=30) as c:
        c.send(pfp.get_request("big.bin") + pfp.get_request("f") * 5 + pfp.stat_request("f") * 5)
        r = c.read_header()
        c.read_body(r, keep=False, limit=1 << 20)
        t0 = time.monotonic()
        wait_for(lambda: unread_by_peer(c) == 0, 10, "the daemon to read the requests")
        wait_for(lambda: len(daemon.log_lines()) >= 11, 15, "11 lines")
        assert time.monotonic() - t0 >= 0.9
        r.body_len -= 1 << 20
        with pytest.raises((pfp.ShortBody, ConnectionResetError)):
            c.read_body(r, keep=False)
    assert daemon.stop() == 0
    recs = log_records(daemon)
    assert len(recs) == 11, recs
    assert (recs[0]["path"], recs[0]["status"]) == (b"big.bin", "OK")
    assert (1 << 20) <= recs[0]["bytes"] < bigfile[1], recs[0]
    assert [(x["op"], x["path"]) for x in recs[1:]] == [("GET", b"f")] * 5 + [("STAT", b"f")] * 5
    assert all(x["status"] in ABANDONED and x["bytes"] == 0 for x in recs[1:]), recs

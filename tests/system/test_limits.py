"""Connection limits: at max_connections a new connection gets EBUSY at once
and is closed (logged with worker=0), and the next one works after one
closes; 1,000 idle or half-sent connections do not delay a new client."""

import socket
import time

import pytest

import pfp
from conftest import parse_log_line, raise_nofile, wait_for


def test_ebusy_at_the_limit(daemon):
    daemon.put("f", b"data")
    daemon.set("server", "max_connections", "3")
    # all three are root's: the global limit is what is tested here
    daemon.set("server", "max_connections_per_user", "0")
    daemon.start()
    held = [daemon.conn() for _ in range(3)]
    busy = 0
    try:
        for c in held:  # each is accepted and served
            assert c.stat("f").name == "OK"
        for _ in range(3):
            with daemon.conn(timeout=5) as extra:
                # EBUSY comes without any request being sent
                r = extra.read_response()
                assert r.problems() == []
                assert r.name == "EBUSY", r
                assert r.message == "EBUSY: connection limit (3) reached", r
                assert extra.closed_by_peer()
                busy += 1
        # the held connections still work
        for c in held:
            assert c.get("f").body == b"data"
        held.pop(0).close()

        # after one closes, a new connection is served (the daemon may take a
        # moment to notice the close; EBUSY answers until then are fine)
        def served():
            nonlocal busy
            c = daemon.conn(timeout=5)
            try:
                c.send(pfp.stat_request("f"))
            except (BrokenPipeError, ConnectionResetError):
                pass  # EBUSY came and the daemon closed before our request
            r = c.read_response()
            if r.name == "EBUSY":
                busy += 1
                c.close()
                return None
            return (c, r)
        c, r = wait_for(served, 10, "a connection after one closed", interval=0.05)
        assert r.name == "OK"
        held.append(c)
    finally:
        for c in held:
            c.close()
    assert daemon.stop() == 0
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    ebusy = [r for r in recs if r["status"] == "EBUSY"]
    assert len(ebusy) == busy
    assert all(r["worker"] == 0 for r in ebusy), ebusy
    assert len(recs) == busy + 3 + 3 + 1


def test_limit_of_one(daemon):
    daemon.put("f", b"data")
    daemon.set("server", "max_connections", "1")
    daemon.start()
    with daemon.conn() as c:
        assert c.get("f").body == b"data"
        with daemon.conn(timeout=5) as c2:
            assert c2.read_response().name == "EBUSY"
        assert c.get("f").body == b"data"


@pytest.mark.pf_timeout(180)
def test_thousand_idle_connections_do_not_delay_a_new_request(daemon):
    raise_nofile(4096)
    data = bytes(range(256)) * 16
    daemon.put("four_k", data)
    daemon.set("server", "workers", "2")
    daemon.set("server", "request_timeout", "120s")
    daemon.set("server", "idle_timeout", "120s")
    daemon.start()
    idle = []
    try:
        for i in range(1000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(str(daemon.sock))
            if i % 2:
                s.sendall(pfp.get_request("four_k")[:10])  # half a request
            idle.append(s)
        # each is accepted and owned by a worker: a request on the last one
        # is answered
        with daemon.conn(timeout=10) as c:
            t0 = time.monotonic()
            r = c.get("four_k")
            elapsed = time.monotonic() - t0
        assert (r.name, r.body) == ("OK", data)
        assert elapsed < 2.0, "a new request took %.2fs with 1000 idle connections" % elapsed
        # several more, each prompt
        for _ in range(20):
            with daemon.conn(timeout=10) as c:
                t0 = time.monotonic()
                assert c.get("four_k").body == data
                assert time.monotonic() - t0 < 2.0
        # the idle ones are all still open (not closed, nothing sent to them)
        for s in idle:
            s.setblocking(False)
            try:
                got = s.recv(1)
                raise AssertionError("idle connection got %r" % got)
            except BlockingIOError:
                pass
        # and a half-sent one, completed now, is answered
        idle[1].setblocking(True)
        idle[1].sendall(pfp.get_request("four_k")[10:])
        c = pfp.Conn(daemon.sock, connect=False)
        c.sock.close()
        c.sock = idle[1]
        assert c.read_response().body == data
    finally:
        for s in idle:
            s.close()
    with daemon.conn() as c:
        assert c.get("four_k").body == data
    assert daemon.stop() == 0
    # One line per request: none for the 500 connections that never sent a
    # byte, one EPROTO ("-", no path) for each of the 499 that hung up in
    # the middle of a request (the 500th was completed and served).
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    served = [r for r in recs if r["status"] == "OK"]
    partial = [r for r in recs if r["status"] != "OK"]
    assert len(served) == 1 + 20 + 1 + 1
    assert len(partial) == 499, "%d lines for abandoned partial requests" % len(partial)
    assert all((r["status"], r["op"], r["path"]) == ("EPROTO", "-", b"") for r in partial), partial[:3]

"""pipefiled.exe --console: starts, says ready, and Ctrl-C stops it
gracefully: a transfer in flight is finished, then the pipe is gone."""

import os
import signal
import time

import pytest

import pfp
from conftest import procs_mentioning, sha256, token_of, wait_for


def test_ctrl_c_stops_cleanly(server, workdir):
    server.put("hello.txt", b"hello world\n")
    assert server.get("/hello.txt").body == b"hello world\n"
    # the leftover check (conftest.workdir) can see the daemon by its token
    assert procs_mentioning(token_of(workdir)), "the running daemon is invisible to the check"
    assert server.stop() == 0
    assert not procs_mentioning(token_of(workdir))
    err = server.stderr()
    assert "ready:" in err and "stopped" in err, err
    assert not server.wine.probe(server.pipe), "the pipe outlived the daemon"


@pytest.mark.pf_timeout(120)
def test_ctrl_c_finishes_transfer_in_flight(server):
    data = os.urandom(16 << 20)
    server.put("big.bin", data)
    with server.conn(timeout=60) as c:
        c.send(pfp.get_request("/big.bin"))
        r = c.read_header()
        assert r.name == "OK"
        head = c.read_body(r, keep=True, limit=1 << 20)  # part of it, then stop
        first = head.body
        server.proc.send_signal(signal.SIGINT)
        rest = c.read_body(pfp.Response(0, 0, 0, r.size, 0, r.body_len - len(first)), keep=True)
        assert sha256(first + rest.body) == sha256(data), "the transfer in flight was cut"
    assert server.wait_exit(30) == 0, server.stderr()
    server.stopped_rc = 0
    assert "stopped" in server.stderr()


def test_second_daemon_same_pipe(make_daemon):
    """FILE_FLAG_FIRST_PIPE_INSTANCE: a second daemon on the same pipe must
    fail loudly. Wine ignores the flag, so this can only pass on Windows."""
    a = make_daemon().start()
    b = make_daemon()
    b.set("server", "socket", a.pipe)
    b.expect_exit = True
    b.start(wait=False)
    # it either exits, or (wine) says it is ready
    wait_for(lambda: b.proc.poll() is not None or "ready:" in b.stderr(), 20,
             "the second daemon to exit or start")
    rc = b.proc.poll()
    if rc is None:
        b.stop()
        pytest.xfail("wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE: the second daemon "
                     "started (needs a real Windows machine)")
    assert rc != 0 and "ready:" not in b.stderr(), b.stderr()
    assert a.get("/x").name == "ENOENT"  # the first one serves on


def test_stop_prompt_with_idle_and_partial_connections(daemon):
    """Nothing in flight: Ctrl-C does not wait for the partial requests'
    request_timeout, the idle_timeout or the shutdown_timeout; exit 0 at
    once, every connection closed, one EPROTO line per partial request and
    none for the idle ones."""
    daemon.set("server", "request_timeout", "60s")
    daemon.set("server", "idle_timeout", "60s")
    daemon.set("server", "shutdown_timeout", "60s")
    daemon.start()
    parts = []
    for i in range(5):
        c = daemon.conn()
        c.send(pfp.get_request("f%d" % i)[:1 + i * 4])  # 1..17 bytes
        parts.append(c)
    idle = [daemon.conn() for _ in range(5)]
    # no way to see "received" through a pipe: give pipecat and the daemon
    # a moment (each pipecat connects as it starts)
    time.sleep(2)
    t0 = time.monotonic()
    daemon.proc.send_signal(signal.SIGINT)
    rc = daemon.wait_exit(20)
    took = time.monotonic() - t0
    daemon.stopped_rc = rc
    assert rc == 0, daemon.stderr()
    assert took < 5, "the stop took %.1fs" % took
    for c in parts + idle:
        assert c.closed_by_peer(timeout=5)
        c.close()
    recs = daemon.log_records()
    assert len(recs) == 5, recs
    assert all((r["status"], r["op"], r["bytes"]) == ("EPROTO", "-", "0") for r in recs), recs


@pytest.mark.pf_timeout(120)
def test_second_ctrl_c_ends_at_once(daemon):
    """A second Ctrl-C during the grace period ends the process at once: the
    transfer in flight is cut, and the client sees a short body."""
    daemon.set("server", "shutdown_timeout", "60s")
    daemon.start()
    daemon.put("big.bin", os.urandom(32 << 20))
    with daemon.conn(timeout=60) as c:
        c.send(pfp.get_request("/big.bin"))
        r = c.read_header()
        c.read_body(r, keep=False, limit=1 << 20)  # then stop reading
        daemon.proc.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping" in daemon.stderr(), 10, "the first Ctrl-C's stop")
        t0 = time.monotonic()
        daemon.proc.send_signal(signal.SIGINT)
        rc = daemon.wait_exit(10)
        daemon.stopped_rc = rc
        daemon.expect_exit = True
        assert rc is not None, "still running 10 s after the second Ctrl-C"
        assert time.monotonic() - t0 < 5
        with pytest.raises(pfp.ShortBody):
            c.read_body(pfp.Response(0, 0, 0, r.size, 0, r.body_len - (1 << 20)), keep=False)

"""pipefiled.exe --console: starts, says ready, and Ctrl-C stops it
gracefully: a transfer in flight is finished, then the pipe is gone."""

import os
import signal

import pytest

import pfp
from conftest import sha256, wait_for


def test_ctrl_c_stops_cleanly(server):
    server.put("hello.txt", b"hello world\n")
    assert server.get("/hello.txt").body == b"hello world\n"
    assert server.stop() == 0
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

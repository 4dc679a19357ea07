"""Malformed requests: EPROTO, then the server closes (docs/protocol.md:
Request). Sent raw through pipecat.exe."""

import time

import pytest

import pfp

BAD = {
    "magic": pfp.encode_request(pfp.OP_GET, "/hello.txt", magic=b"XX"),
    "version": pfp.encode_request(pfp.OP_GET, "/hello.txt", version=2),
    "op-0": pfp.encode_request(0, "/hello.txt"),
    "op-3": pfp.encode_request(3, "/hello.txt"),
    "op-0x7f": pfp.encode_request(0x7F, "/hello.txt"),
    "path_len-0": pfp.encode_request(pfp.OP_GET, b"", path_len=0),
    "path_len-4097": pfp.encode_request(pfp.OP_GET, b"a" * 4097),
    "nul-in-path": pfp.encode_request(pfp.OP_GET, b"hello.txt\0x"),
    "stat-with-offset": pfp.encode_request(pfp.OP_STAT, "/hello.txt", offset=1),
    "stat-with-length": pfp.encode_request(pfp.OP_STAT, "/hello.txt", length=1),
}


@pytest.mark.parametrize("what", sorted(BAD))
def test_malformed_is_eproto_then_close(server, what):
    server.put("hello.txt", b"hello world\n")
    with server.conn() as c:
        # a good request first: the bad one is judged on a used connection
        assert c.get("/hello.txt").body == b"hello world\n"
        r = c.request(BAD[what])
        assert r.problems() == [], r
        assert r.name == "EPROTO", (what, r)
        assert (r.size, r.body_len) == (0, 0)
        assert c.closed_by_peer(10), "%s: the server must close after EPROTO" % what


def test_wrong_first_byte_answered_at_once(server):
    with server.conn() as c:
        t0 = time.monotonic()
        c.send(b"G")  # e.g. an HTTP client; nothing more is sent
        r = c.read_response()
        assert r.name == "EPROTO", r
        assert time.monotonic() - t0 < 5, "not answered at once"
        assert c.closed_by_peer(10)


def test_request_timeout(daemon):
    daemon.set("server", "request_timeout", "1s")
    daemon.start()
    with daemon.conn() as c:
        t0 = time.monotonic()
        c.send(pfp.get_request("/hello.txt")[:10])  # half a header, then silence
        r = c.read_response()
        assert (r.name, r.message) == ("EPROTO", "EPROTO: request timed out"), r
        assert time.monotonic() - t0 < 8
        assert c.closed_by_peer(10)


def test_pipelined_after_malformed_not_answered(server):
    server.put("hello.txt", b"hello world\n")
    with server.conn() as c:
        c.send(pfp.get_request("/hello.txt") + BAD["version"] + pfp.get_request("/hello.txt"))
        assert c.read_response().name == "OK"
        assert c.read_response().name == "EPROTO"
        assert c.closed_by_peer(10), "nothing may be answered after EPROTO"


def test_daemon_survives_garbage(server):
    server.put("hello.txt", b"hello world\n")
    for junk in (b"\x00" * 64, b"PF" + b"\xff" * 100, b"PF\x01\x01\xff\xff" + b"\x00" * 16):
        with server.conn() as c:
            c.send(junk)
            r = c.read_response()
            assert r.name == "EPROTO", (junk[:8], r)
    assert server.get("/hello.txt").body == b"hello world\n"

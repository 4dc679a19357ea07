"""Every kind of malformed request gets EPROTO and then a closed connection;
the header is judged as soon as the deciding bytes arrive (a bad magic after
one byte), never at the request timeout."""

import time

import pytest

import pfp
from pfp import encode_request as req

GET, STAT = pfp.OP_GET, pfp.OP_STAT

# name -> bytes sent (nothing more follows)
CASES = {
    "bad_magic_first_byte_alone": b"X",
    "bad_magic_second_byte_alone": b"PX",
    "lowercase_magic": req(GET, "f", magic=b"pf"),
    "http_request": b"GET /f HTTP/1.0\r\n\r\n",
    "bad_version_alone": b"PF\x02",
    "version_0": req(GET, "f", version=0),
    "version_2": req(GET, "f", version=2),
    "version_255": req(GET, "f", version=255),
    "op_0_alone": b"PF\x01\x00",
    "op_0": req(0, "f"),
    "op_3": req(3, "f"),
    "op_0x7f": req(0x7F, "f"),
    "op_close_flag_only": req(0x80, "f"),
    "op_unknown_bit_0x40": req(GET | 0x40, "f"),
    "op_unknown_bit_0x10_stat": req(STAT | 0x10, "f"),
    "op_0xff": req(0xFF, "f"),
    "path_len_0": req(GET, b""),
    "path_len_0_stat": req(STAT, b""),
    "path_len_4097_header_only": req(GET, b"", path_len=4097),
    "path_len_65535_header_only": req(GET, b"", path_len=65535),
    "nul_in_path": req(GET, b"a\x00b"),
    "nul_only_path": req(GET, b"\x00"),
    "nul_at_end": req(GET, b"f\x00"),
    "stat_with_offset": req(STAT, "f", offset=1),
    "stat_with_length": req(STAT, "f", length=1),
    "stat_with_both": req(STAT, "f", offset=2**64 - 1, length=2**64 - 1),
}


def expect_eproto_then_close(c, t0, bound=5.0):
    r = c.read_response()
    elapsed = time.monotonic() - t0
    assert r.problems() == [], r.problems()
    assert r.name == "EPROTO", r
    assert r.message.startswith("EPROTO: ")
    assert (r.size, r.mtime, r.body_len) == (0, 0, 0)
    assert elapsed < bound, "EPROTO after %.2fs: judged late" % elapsed
    assert c.closed_by_peer(timeout=5.0), "connection not closed after EPROTO"
    return r


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_gets_eproto_and_close(daemon, case):
    daemon.put("f", b"data")
    daemon.set("server", "request_timeout", "60s")  # so only judging can answer
    daemon.start()
    with daemon.conn(timeout=10) as c:
        t0 = time.monotonic()
        c.send(CASES[case])
        expect_eproto_then_close(c, t0)
    # the daemon is fine
    assert daemon.get("f").body == b"data"


@pytest.mark.parametrize("case", ["version_2", "op_3", "path_len_0", "nul_in_path", "stat_with_offset"])
def test_malformed_after_good_requests_closes(daemon, case):
    """A malformed request mid-connection: earlier answers arrive, then
    EPROTO, then close; a good request pipelined after it is not answered."""
    daemon.put("f", b"data")
    daemon.start()
    with daemon.conn() as c:
        assert c.get("f").body == b"data"
        t0 = time.monotonic()
        c.send(pfp.get_request("f") + CASES[case] + pfp.get_request("f"))
        assert c.read_response().body == b"data"
        expect_eproto_then_close(c, t0)


def test_path_len_4096_is_valid(daemon):
    path = ("a/" * 2047 + "ab").encode()
    assert len(path) == 4096
    daemon.start()
    with daemon.conn() as c:
        r = c.get(path)
        assert r.name == "ENOENT", r
        r = c.stat(path)
        assert r.name == "ENOENT", r


def test_garbage_flood_costs_nothing(daemon):
    """Many malformed connections in a row leave the daemon serving."""
    daemon.put("f", b"data")
    daemon.start()
    for i in range(200):
        with daemon.conn(timeout=5) as c:
            c.send(bytes([i & 0xFF]) * 64 if i & 0xFF != ord("P") else b"P\x00")
            r = c.read_response()
            assert r.name == "EPROTO"
    assert daemon.get("f").body == b"data"

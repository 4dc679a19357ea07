"""Pipelining: many requests sent at once on one connection are answered in
order, errors included; the CLOSE flag closes the connection after its
answer and nothing after it is answered (what was read behind it is logged as
abandoned)."""

import os
import threading

import pytest

import pfp
from conftest import link_big
from test_disconnect import ABANDONED, log_records


def files(d):
    data = {"a": b"alpha" * 100, "b": os.urandom(70000), "empty": b"", "c": b"c"}
    for k, v in data.items():
        d.put(k, v)
    d.mkdir("dir")
    return data


def test_pipelined_answers_in_order(daemon):
    data = files(daemon)
    daemon.start()
    reqs = [
        (pfp.get_request("a"), ("OK", data["a"])),
        (pfp.stat_request("b"), ("OK", b"")),
        (pfp.get_request("missing"), ("ENOENT", b"")),
        (pfp.get_request("b", offset=10, length=20), ("OK", data["b"][10:30])),
        (pfp.get_request("dir"), ("ENOTREG", b"")),
        (pfp.get_request("empty"), ("OK", b"")),
        (pfp.get_request("../x"), ("EXDEV", b"")),
        (pfp.get_request("b"), ("OK", data["b"])),
        (pfp.get_request("c", offset=5), ("ERANGE", b"")),
        (pfp.get_request("c"), ("OK", b"c")),
    ]
    with daemon.conn() as c:
        c.send(b"".join(r for r, _ in reqs))
        for i, (_, (name, body)) in enumerate(reqs):
            r = c.read_response()
            assert r.problems() == [], (i, r.problems())
            assert (r.name, r.body) == (name, body), i
        # still open and usable
        assert c.get("c").body == b"c"


def test_long_pipeline_with_concurrent_reader(daemon):
    """500 requests written while the answers are read: back-pressure in
    both directions, order kept."""
    data = files(daemon)
    daemon.start()
    order = ["a", "b", "c", "empty", "missing"] * 100
    blob = b"".join(pfp.get_request(n) for n in order)
    with daemon.conn(timeout=30) as c:
        t = threading.Thread(target=c.sock.sendall, args=(blob,))
        t.start()
        for i, n in enumerate(order):
            r = c.read_response()
            if n == "missing":
                assert r.name == "ENOENT", i
            else:
                assert (r.name, r.body) == ("OK", data[n]), i
        t.join(30)
        assert not t.is_alive()


@pytest.mark.pf_timeout(240)
def test_big_then_small_in_order(daemon, bigfile):
    name, size, digest = link_big(bigfile, daemon)
    daemon.put("small", b"small")
    daemon.start()
    with daemon.conn(timeout=60) as c:
        c.send(pfp.get_request("small") + pfp.get_request(name) + pfp.get_request("small")
               + pfp.stat_request(name))
        assert c.read_response().body == b"small"
        r = c.read_response(keep=False)
        assert (r.name, r.received, r.sha256) == ("OK", size, digest)
        assert c.read_response().body == b"small"
        assert c.read_response().size == size


@pytest.mark.parametrize("last", ["get_ok", "stat_ok", "get_enoent", "get_eaccesslike_exdev"])
def test_close_flag_closes_after_answer(daemon, last):
    data = files(daemon)
    daemon.start()
    closing = {
        "get_ok": (pfp.get_request("a", close=True), "OK"),
        "stat_ok": (pfp.stat_request("a", close=True), "OK"),
        "get_enoent": (pfp.get_request("missing", close=True), "ENOENT"),
        "get_eaccesslike_exdev": (pfp.get_request("../a", close=True), "EXDEV"),
    }[last]
    with daemon.conn() as c:
        c.send(pfp.get_request("c") + closing[0] + pfp.get_request("c") + pfp.get_request("c"))
        assert c.read_response().body == b"c"
        r = c.read_response()
        assert r.name == closing[1]
        if last == "get_ok":
            assert r.body == data["a"]
        assert c.closed_by_peer(), "connection open after a CLOSE request"
    # the two requests after the CLOSE one were read, never answered: each
    # has its line all the same
    assert daemon.stop() == 0
    recs = log_records(daemon)
    assert [x["status"] for x in recs[:2]] == ["OK", closing[1]], recs
    assert [(x["path"], x["bytes"]) for x in recs[2:]] == [(b"c", 0)] * 2, recs
    assert all(x["status"] in ABANDONED for x in recs[2:]), recs


def test_close_flag_on_single_request(daemon):
    daemon.put("f", b"x" * 10000)
    daemon.start()
    with daemon.conn() as c:
        r = c.get("f", close=True)
        assert (r.name, len(r.body)) == ("OK", 10000)
        assert c.closed_by_peer()
    assert daemon.stop() == 0
    assert len(daemon.log_lines()) == 1

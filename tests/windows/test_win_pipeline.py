"""Many requests on one connection: pipelining, answers in order, CLOSE,
requests that arrive in pieces (docs/protocol.md, connection rules)."""

import time

import pfp


def files(server, n=5):
    want = {}
    for i in range(n):
        data = (b"file %d\n" % i) * (i * 1000 + 1)
        server.put("f%d.txt" % i, data)
        want["/f%d.txt" % i] = data
    return want


def test_pipelined_mixed_requests(server):
    want = files(server)
    reqs = [
        pfp.get_request("/f0.txt"),
        pfp.stat_request("/f1.txt"),
        pfp.get_request("/missing"),
        pfp.get_request("/f2.txt", offset=3, length=10),
        pfp.get_request("/f3.txt"),
        pfp.get_request("/f4.txt", close=True),
    ]
    with server.conn() as c:
        c.send(b"".join(reqs))  # all at once, before reading anything
        got = [c.read_response() for _ in reqs]
        assert c.closed_by_peer(10), "CLOSE on the last request: the server must close"
    for r in got:
        assert r.problems() == [], r
    assert [r.name for r in got] == ["OK", "OK", "ENOENT", "OK", "OK", "OK"]
    assert got[0].body == want["/f0.txt"]
    assert (got[1].size, got[1].body_len, got[1].body) == (len(want["/f1.txt"]), 0, b"")
    assert got[2].message == "ENOENT: no such file"
    assert got[3].body == want["/f2.txt"][3:13]
    assert got[4].body == want["/f3.txt"]
    assert got[5].body == want["/f4.txt"]


def test_many_pipelined_in_order(server):
    want = files(server, 8)
    paths = sorted(want) * 25  # 200 requests
    with server.conn(timeout=60) as c:
        c.send(b"".join(pfp.get_request(p) for p in paths))
        for i, p in enumerate(paths):
            r = c.read_response()
            assert r.name == "OK" and r.body == want[p], "answer %d (%s) out of order: %r" % (i, p, r)


def test_connection_reused_without_pipelining(server):
    want = files(server, 3)
    with server.conn() as c:
        for _ in range(3):
            for p, data in want.items():
                assert c.get(p).body == data
        # still open: no CLOSE was asked for
        assert not c.closed_by_peer(1)


def test_request_in_pieces(server):
    server.put("hello.txt", b"hello world\n")
    req = pfp.get_request("/hello.txt")
    with server.conn() as c:
        for i in range(0, len(req), 3):  # 3 bytes at a time, the header split
            c.send(req[i:i + 3])
            time.sleep(0.02)
        r = c.read_response()
    assert (r.name, r.body) == ("OK", b"hello world\n")


def test_idle_connection_closed(daemon):
    daemon.set("server", "idle_timeout", "1s")
    daemon.start()
    daemon.put("a.txt", b"a")
    with daemon.conn() as c:
        assert c.get("/a.txt").body == b"a"
        t0 = time.monotonic()
        assert c.closed_by_peer(15), "idle_timeout = 1s: the server must close an idle connection"
        assert time.monotonic() - t0 < 10

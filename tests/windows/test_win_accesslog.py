"""The access log: one line per request, proto=pfp1, the client's user,
the path as asked, the status and bytes sent."""

import json
import re

import pfp


def requests(d):
    d.put("hello.txt", b"hello world\n")
    with d.conn() as c:
        assert c.get("/hello.txt").name == "OK"
        assert c.stat("/hello.txt").name == "OK"
        assert c.get("/missing.txt").name == "ENOENT"
        assert c.get("/hello.txt", offset=6, length=5).body == b"world"
        assert c.get("../x").name == "EXDEV"
        r = c.request(pfp.encode_request(pfp.OP_GET, "/hello.txt", version=9))
        assert r.name == "EPROTO"
    assert d.cli("get", "/hello.txt").returncode == 0


EXPECT = [  # op, path, status, bytes
    ("GET", "/hello.txt", "OK", 12),
    ("STAT", "/hello.txt", "OK", 0),
    ("GET", "/missing.txt", "ENOENT", 0),
    ("GET", "/hello.txt", "OK", 5),
    ("GET", "../x", "EXDEV", 0),
    ("-", None, "EPROTO", 0),
    ("GET", "/hello.txt", "OK", 12),
]


def test_one_line_per_request(daemon):
    daemon.start()
    requests(daemon)
    assert daemon.stop() == 0  # the log is complete once the daemon is gone
    recs = daemon.log_records()
    assert len(recs) == len(EXPECT), "\n".join(l.decode(errors="replace") for l in daemon.log_lines())
    users = set()
    for rec, (op, path, status, nbytes) in zip(recs, EXPECT):
        line = " ".join("%s=%s" % kv for kv in rec.items())
        assert rec["proto"] == "pfp1", line
        assert rec["status"] == status, line
        if op != "-":
            assert rec["op"] == op, line
        if path is not None:
            assert rec["path"] == path, line
        assert int(rec["bytes"]) == nbytes, line
        assert re.match(r"^[^@\s]+@[^@\s]+$", rec["user"]), "user not name@DOMAIN in %s" % line
        assert rec["pid"].isdigit() and int(rec["pid"]) > 0, line
        users.add(rec["user"])
    assert len(users) == 1, users  # one client account throughout
    # the OK GET's size is the file's, and the path as resolved
    assert int(recs[0]["size"]) == 12
    assert recs[0]["resolved"] == "hello.txt" and recs[4]["resolved"] == "-", recs


def test_json_format(daemon):
    daemon.set("log", "access_format", "json")
    daemon.start()
    requests(daemon)
    assert daemon.stop() == 0
    lines = daemon.log_lines()
    assert len(lines) == len(EXPECT)
    for line, (op, path, status, nbytes) in zip(lines, EXPECT):
        obj = json.loads(line)
        assert obj["proto"] == "pfp1" and obj["status"] == status, obj
        assert obj["bytes"] == nbytes, obj
        assert isinstance(obj["user"], str) and obj["user"] not in ("", "-"), obj


def test_lines_appear_while_running(server):
    """The log is written as requests finish, not only at exit (tail -f)."""
    from conftest import wait_for
    server.put("hello.txt", b"hello world\n")
    assert server.get("/hello.txt").name == "OK"
    wait_for(lambda: len(server.log_lines()) == 1, 10, "the request's line in the access log")
    assert server.stat("/hello.txt").name == "OK"
    wait_for(lambda: len(server.log_lines()) == 2, 10, "the second line in the access log")

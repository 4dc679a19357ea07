"""STAT: size and mtime of the file (mtime signed), no body; GET reports the
same fields."""

import os

import pytest


@pytest.mark.parametrize("size,mtime", [
    (0, 0), (1, 1), (4096, 1234567890), (10000, 2**31 + 5),  # past 2038
    (17, -86400 * 365),  # before 1970: mtime is signed
])
def test_stat_size_and_mtime(daemon, size, mtime):
    p = daemon.put("f", os.urandom(size))
    os.utime(p, (mtime, mtime))
    daemon.start()
    with daemon.conn() as c:
        r = c.stat("f")
        assert r.problems() == []
        assert (r.name, r.message, r.size, r.mtime, r.body_len, r.received) == \
            ("OK", "", size, mtime, 0, 0)
        # nothing follows a STAT answer: the next answer is parsed cleanly
        g = c.get("f")
        assert (g.name, g.size, g.mtime, g.body_len) == ("OK", size, mtime, size)


def test_stat_follows_changes(daemon):
    p = daemon.put("f", b"12345")
    os.utime(p, (1000, 1000))
    daemon.start()
    with daemon.conn() as c:
        assert (c.stat("f").size, c.stat("f").mtime) == (5, 1000)
        with open(p, "ab") as f:
            f.write(b"678")
        os.utime(p, (2000, 2000))
        r = c.stat("f")
        assert (r.size, r.mtime) == (8, 2000)


def test_stat_errors(daemon):
    daemon.mkdir("dir")
    daemon.start()
    assert daemon.stat("missing").name == "ENOENT"
    assert daemon.stat("dir").name == "ENOTREG"
    assert daemon.stat("/").name == "ENOTREG"
    assert daemon.stat("../x").name == "EXDEV"


def test_cli_stat(daemon, runner):
    p = daemon.put("f", b"x" * 777)
    os.utime(p, (1500000000, 1500000000))
    daemon.start()
    r = runner.cli(None, "-s", daemon.sock, "stat", "f")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "777" in out and "1500000000" in out, out
    r = runner.cli(None, "-s", daemon.sock, "stat", "nope")
    assert r.returncode == 11
    assert r.stderr.startswith(b"pipefile: nope: "), r.stderr

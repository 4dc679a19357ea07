"""SIGHUP and SIGUSR1 in detail: a reload whose root cannot be opened is
refused (the error names the reload and FILE:LINE) and the old root keeps
being served; a shortened request_timeout applies to new connections;
SIGUSR1 only reopens the access log and never re-reads the config; a refused
reload still reopens the access log; access_format text -> json applies to
the lines after the reload. (Basic reload and reopen: test_signals.py,
test_accesslog.py.)"""

import os
import signal
import time

import pytest

import pfp
from conftest import USER_A, USER_B, need_root, parse_log_line, wait_for


def reload_and_wait(d, what="reloaded"):
    """SIGHUP; wait for the daemon's line about it (in this run's stderr)
    and return that line."""
    d.write_ini()
    before = d.stderr().count(what)
    d.kill(signal.SIGHUP)
    wait_for(lambda: d.stderr().count(what) > before, 10, "%r on stderr after SIGHUP" % what)
    return [l for l in d.stderr().splitlines() if what in l][-1]


@pytest.mark.parametrize("kind,reason", [("missing", "No such file or directory"),
                                         ("file", "Not a directory")])
def test_sighup_with_unopenable_root_is_refused(make_daemon, kind, reason):
    d = make_daemon()
    d.put("f", b"old root\n")
    d.start()
    with d.conn() as held:
        assert held.get("f").body == b"old root\n"
        bad = d.dir / "newroot"
        if kind == "file":
            bad.write_text("x\n")
        # root on line 5 of the rendered file
        d.ini_text = ("[server]\nsocket = %s\nsocket_mode = 0666\nworkers = 2\nroot = %s\n"
                      "[identity]\nserve_root_clients = yes\n[log]\naccess_log = %s\n"
                      % (d.sock, bad, d.access_log))
        line = reload_and_wait(d, "reload")
        assert line == ("pipefiled: error: reload failed, keeping the running config: "
                        "%s:5: [server] root: %s: %s" % (d.ini, bad, reason)), line
        assert "reloaded" not in d.stderr()
        # the old root keeps being served, on the held and on new connections
        assert held.get("f").body == b"old root\n"
        for _ in range(5):
            assert d.get("f").body == b"old root\n"
        if kind == "missing":
            assert not bad.exists()  # a configured root is never created
    assert d.running()
    # and the old config as a whole: a later good reload still works
    d.ini_text = None
    reload_and_wait(d)
    assert d.get("f").body == b"old root\n"
    assert d.stop() == 0


def partial_request_closes_after(d, timeout=20):
    """Open a new connection, send half a request, return seconds until the
    daemon answers EPROTO 'request timed out' (asserts it does)."""
    with d.conn(timeout=timeout) as c:
        c.send(pfp.get_request("f")[:10])
        t0 = time.monotonic()
        r = c.read_response()
        took = time.monotonic() - t0
        assert r.name == "EPROTO" and "timed out" in r.message, r
        assert c.closed_by_peer(timeout=5)
    return took


@pytest.mark.pf_timeout(90)
def test_sighup_shortened_request_timeout_applies_to_new_connections(daemon):
    daemon.put("f", b"x")
    daemon.set("server", "request_timeout", "20s")
    daemon.start()
    # before: a partial request is still open after 1.5 s
    with daemon.conn() as c:
        c.send(pfp.get_request("f")[:10])
        assert not c.closed_by_peer(timeout=1.5), "closed before the 20 s request_timeout"
        daemon.set("server", "request_timeout", "300ms")
        reload_and_wait(daemon)
        took = partial_request_closes_after(daemon)
        assert 0.25 <= took < 3, took
    # more new connections: every one now times out at 300 ms
    for _ in range(3):
        took = partial_request_closes_after(daemon)
        assert 0.25 <= took < 3, took
    # and lengthened again
    daemon.set("server", "request_timeout", "20s")
    reload_and_wait(daemon)
    with daemon.conn() as c:
        c.send(pfp.get_request("f")[:10])
        assert not c.closed_by_peer(timeout=1.5)
    assert daemon.get("f").body == b"x"
    assert daemon.stop() == 0
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    # 4 timed out at 300 ms, and the 2 partial requests the test hung up on
    # (logged as abandoned when the client closed), and the GET: one line each
    assert len(recs) == 7, recs
    assert [r["status"] for r in recs].count("EPROTO") == 6, recs
    short = [r for r in recs if r["status"] == "EPROTO" and r["duration_us"] < 1000000]
    assert len(short) == 4, recs


def test_sigusr1_does_not_reread_config(daemon, runner):
    """deny_users changed in the file + SIGUSR1: the user is still served
    (only the log was reopened); SIGHUP: now denied."""
    need_root()
    daemon.put("f", b"shared\n")
    daemon.start()
    assert runner.pfp(USER_A, daemon.sock, "get", "f")[0]["name"] == "OK"
    wait_for(lambda: len(daemon.log_lines()) == 1, 10, "the first line")

    daemon.set("identity", "deny_users", str(USER_A.uid))
    daemon.write_ini()
    # the reopen after a rename shows the signal was handled
    rotated = daemon.dir / "access.log.1"
    os.rename(daemon.access_log, rotated)
    daemon.kill(signal.SIGUSR1)
    assert daemon.get("f").name == "OK"  # a root request (served: yes in this config)
    wait_for(lambda: daemon.access_log.exists() and len(daemon.log_lines()) == 1, 10,
             "SIGUSR1 to reopen the access log at its path")
    for _ in range(3):
        res = runner.pfp(USER_A, daemon.sock, "get", "f")
        assert res[0]["name"] == "OK", res
    assert runner.pfp(USER_B, daemon.sock, "get", "f")[0]["name"] == "OK"
    assert "reload" not in daemon.stderr(), daemon.stderr()

    reload_and_wait(daemon)
    res = runner.pfp(USER_A, daemon.sock, "get", "f")
    assert res[0]["name"] == "EPERM", res
    assert runner.pfp(USER_B, daemon.sock, "get", "f")[0]["name"] == "OK"
    assert daemon.stop() == 0
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    assert [(r["uid"], r["status"]) for r in recs] == \
        [(0, "OK")] + [(USER_A.uid, "OK")] * 3 + [(USER_B.uid, "OK"), (USER_A.uid, "EPERM"),
                                                  (USER_B.uid, "OK")], recs
    assert len(rotated.read_bytes().splitlines()) == 1


@pytest.mark.parametrize("bad", ["bogus", "root"])
def test_refused_reload_still_reopens_access_log(daemon, bad):
    daemon.put("f", b"x")
    daemon.start()
    for _ in range(2):
        assert daemon.get("f").name == "OK"
    wait_for(lambda: len(daemon.log_lines()) == 2, 10, "two lines")
    rotated = daemon.dir / "access.log.1"
    os.rename(daemon.access_log, rotated)
    good_config = daemon.render()
    # the bad file keeps access_log at the same path, and breaks something else
    if bad == "bogus":
        daemon.ini_text = good_config.replace("[server]\n", "[server]\nbogus = 1\n", 1)
    else:
        daemon.ini_text = good_config.replace("root = %s\n" % daemon.root,
                                              "root = /no/such/root/pf\n", 1)
    assert daemon.ini_text != good_config
    line = reload_and_wait(daemon, "reload failed")
    assert line.startswith("pipefiled: error: reload failed, keeping the running config: %s:"
                           % daemon.ini), line
    for _ in range(3):
        assert daemon.get("f").body == b"x"
    wait_for(lambda: daemon.access_log.exists() and len(daemon.log_lines()) == 3, 10,
             "3 new lines in a new file at the configured path")
    assert len(rotated.read_bytes().splitlines()) == 2
    daemon.ini_text = None
    assert daemon.stop() == 0
    assert len(daemon.log_lines()) == 3
    assert len(rotated.read_bytes().splitlines()) == 2


def test_sighup_access_format_text_to_json(daemon):
    daemon.put("f", b"abc")
    daemon.set("log", "access_format", "text")
    daemon.start()

    def logged(n):
        # Each connection may land on another worker, whose line can be
        # queued after the next one's: wait for it before going on, so the
        # order is the order asked.
        wait_for(lambda: len(daemon.log_lines()) == n, 10, "%d lines" % n)
    assert daemon.get("f").name == "OK"
    logged(1)
    assert daemon.get("nope").name == "ENOENT"
    logged(2)
    daemon.set("log", "access_format", "json")
    reload_and_wait(daemon)
    assert daemon.get("f").name == "OK"
    logged(3)
    assert daemon.stat("f").name == "OK"
    daemon.set("log", "access_format", "text")
    logged(4)
    reload_and_wait(daemon)
    assert daemon.get("nope").name == "ENOENT"
    assert daemon.stop() == 0
    lines = daemon.log_lines()
    assert len(lines) == 5, lines
    fmts = ["text", "text", "json", "json", "text"]
    recs = [parse_log_line(l, f) for l, f in zip(lines, fmts)]
    for l, f in zip(lines, fmts):
        assert l.startswith(b"{") == (f == "json"), l
    assert [(r["op"], r["path"], r["status"], r["bytes"]) for r in recs] == [
        ("GET", b"f", "OK", 3), ("GET", b"nope", "ENOENT", 0), ("GET", b"f", "OK", 3),
        ("STAT", b"f", "OK", 0), ("GET", b"nope", "ENOENT", 0)], recs

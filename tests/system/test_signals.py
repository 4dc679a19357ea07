"""Signals: SIGHUP re-reads the config (a good one applies to new requests, a
bad one is refused with an error mentioning the reload and the old config
stays; restart-only keys are kept with a warning); SIGTERM and SIGINT stop
gracefully: in-flight responses finish, idle connections close, the socket
file goes, exit 0; shutdown_timeout bounds the wait. (Log reopen on SIGHUP
and SIGUSR1: test_accesslog.py.)"""

import os
import signal
import time

import pytest

import pfp
from conftest import USER_B, link_big, need_root, wait_for


def reload(d):
    d.write_ini()
    d.kill(signal.SIGHUP)


def test_sighup_applies_new_root(make_daemon):
    d = make_daemon()
    other = d.dir / "root2"
    other.mkdir(mode=0o755)
    (other / "f").write_bytes(b"two")
    d.put("f", b"one")
    d.start()
    assert d.get("f").body == b"one"
    with d.conn() as held:  # an open connection keeps working across a reload
        assert held.get("f").body == b"one"
        d.set("server", "root", str(other))
        reload(d)
        wait_for(lambda: d.get("f").body == b"two", 10, "the new root to be served")
        assert held.get("f").name == "OK"
    assert d.running()


def test_sighup_applies_policy(daemon, runner):
    need_root()
    daemon.put("f", b"x")
    daemon.start()
    assert daemon.stat("f").name == "OK"
    daemon.set("identity", "deny_users", "0")
    reload(daemon)
    wait_for(lambda: daemon.stat("f").name == "EPERM", 10, "root to be denied after reload")
    assert runner.pfp(USER_B, daemon.sock, "get", "f")[0]["name"] == "OK"
    # and back
    daemon.set("identity", "deny_users", "")
    reload(daemon)
    wait_for(lambda: daemon.stat("f").name == "OK", 10, "root to be served again")


def first_answer(d, send, timeout=10):
    """Connect, send (bytes, maybe none), and return (status name or None
    when the daemon closed without an answer, seconds until then). A
    connection refused EBUSY (the place of the one before may not be free
    yet under max_connections = 1) is tried again."""
    deadline = time.monotonic() + timeout
    while True:
        with d.conn(timeout=timeout) as c:
            t0 = time.monotonic()
            try:
                if send:
                    c.send(send)
                r = c.read_response()
                name = r.name
            except (BrokenPipeError, ConnectionResetError):
                name = "EBUSY"  # it came and the daemon closed first
            except pfp.ProtocolError:
                name = None  # closed without a word: an idle close
            elapsed = time.monotonic() - t0
        if name != "EBUSY" or time.monotonic() > deadline:
            return name, elapsed
        time.sleep(0.05)


@pytest.mark.pf_timeout(120)
def test_sighup_applies_timeouts_and_limits(daemon):
    """Every limit the reload changes is in force afterwards: each was far
    from its new value before (10 s, 60 s, 4096 connections)."""
    daemon.put("f", b"x")
    daemon.start()
    daemon.set("server", "max_connections", "1")
    daemon.set("server", "request_timeout", "500ms")
    daemon.set("server", "idle_timeout", "1s")
    reload(daemon)
    with daemon.conn() as c:
        assert c.get("f").name == "OK"

        def busy():
            with daemon.conn(timeout=5) as c2:
                try:
                    c2.send(pfp.stat_request("f"))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # EBUSY came and the daemon closed first
                return c2.read_response().name == "EBUSY"
        wait_for(busy, 10, "max_connections = 1 to take effect")
    # request_timeout: half a request is answered EPROTO at 0.5 s, not 10 s
    name, elapsed = first_answer(daemon, pfp.get_request("f")[:10])
    assert name == "EPROTO" and 0.45 <= elapsed < 5, (name, elapsed)
    # idle_timeout: a connection that sends nothing is closed at 1 s, not 60 s
    name, elapsed = first_answer(daemon, b"")
    assert name is None and 0.9 <= elapsed < 5, (name, elapsed)
    # The place the idle connection held is given back once the daemon has
    # closed it, which the client may see a moment before: with
    # max_connections = 1 the next one waits for that.
    wait_for(lambda: daemon.get("f").body == b"x", 5, "the one place to be free again")


@pytest.mark.parametrize("bad", [
    "[server]\nbogus = 1\n",
    "[identity]\ndeny_users = 0\n[server]\nworkers = 0\n",  # partly valid: nothing applied
    "[server]\nroot = /no/such/root/anywhere\n",
    "[identity]\ndeny_users = no_such_user_pf\n",
])
def test_sighup_bad_config_keeps_old(daemon, bad):
    daemon.put("f", b"x")
    daemon.start()
    assert daemon.get("f").body == b"x"
    daemon.ini_text = bad
    daemon.write_ini()
    daemon.kill(signal.SIGHUP)
    line = wait_for(lambda: [l for l in daemon.stderr().splitlines() if "reload" in l], 10,
                    "an error line about the reload")[0]
    assert line.startswith("pipefiled: error: "), line
    # the old config stays in force, wholly
    assert daemon.get("f").body == b"x"
    assert daemon.stat("f").name == "OK"
    assert daemon.running()
    # a good config after a bad one applies: a new root, served at once
    other = daemon.dir / "root2"
    other.mkdir(mode=0o755)
    (other / "f").write_bytes(b"from the good config")
    daemon.ini_text = None
    daemon.set("server", "root", str(other))
    reload(daemon)
    wait_for(lambda: daemon.get("f").body == b"from the good config", 10,
             "the good config's root to be served")
    assert "pipefiled: info: reloaded %s" % daemon.ini in daemon.stderr()
    assert daemon.stop() == 0


def test_sighup_restart_keys_kept_with_warning(daemon, workdir):
    daemon.put("f", b"x")
    daemon.start()
    new_sock = workdir / "new.sock"
    daemon.set("server", "workers", "5")
    daemon.set("server", "socket", str(new_sock))
    daemon.set("server", "socket_mode", "0600")
    reload(daemon)
    warn = wait_for(lambda: [l for l in daemon.stderr().splitlines()
                             if l.startswith("pipefiled: warning:") and "workers" in l], 10,
                    "a warning naming the restart-only keys")
    assert "socket" in warn[0], warn
    assert daemon.get("f").body == b"x"  # still on the old socket
    assert not new_sock.exists()
    assert os.stat(daemon.sock).st_mode & 0o777 == 0o666


def test_sighup_storm(daemon):
    daemon.put("f", b"x")
    daemon.start()
    with daemon.conn() as c:
        for i in range(30):
            daemon.kill(signal.SIGHUP)
            daemon.kill(signal.SIGUSR1)
            assert c.get("f").body == b"x"
    assert daemon.get("f").body == b"x"
    assert daemon.stop() == 0


@pytest.mark.pf_timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_stop_finishes_in_flight_transfer(daemon, bigfile, sig):
    name, size, digest = link_big(bigfile, daemon)
    daemon.put("f", b"x")
    daemon.set("server", "shutdown_timeout", "60s")
    daemon.start()
    idle = daemon.conn()
    busy = daemon.conn(timeout=60)
    busy.send(pfp.get_request(name))
    r = busy.read_header()
    busy.read_body(r, keep=False, limit=1 << 20)
    head = r.sha256
    daemon.kill(sig)
    # idle connections are closed; new ones are not served
    assert idle.closed_by_peer(timeout=10), "idle connection not closed on stop"

    def refused():
        try:
            with daemon.conn(timeout=5) as c:
                c.send(pfp.stat_request("f"))
                return c.closed_by_peer(timeout=5)
        except (ConnectionRefusedError, FileNotFoundError, BrokenPipeError, ConnectionResetError):
            return True
        except pfp.ProtocolError:
            return False
    wait_for(refused, 10, "new connections to be refused after %s" % signal.Signals(sig).name)
    assert daemon.running(), "exited before the in-flight transfer finished"
    # the in-flight transfer completes, byte-exact
    rest_len = r.body_len - (1 << 20)
    r.body_len = rest_len
    busy.read_body(r, keep=False)
    assert r.received == rest_len
    busy.close()
    rc = daemon.wait_exit(20)
    assert rc == 0, daemon.stderr()
    daemon.stopped_rc = rc
    assert not daemon.sock.exists()
    with open(bigfile[0], "rb") as f:
        import hashlib
        assert hashlib.sha256(f.read(1 << 20)).hexdigest() == head
    lines = [l for l in daemon.log_lines() if name.encode() in l]
    assert len(lines) == 1 and b"bytes=%d " % size in lines[0], lines


def test_shutdown_timeout_bounds_a_stalled_reader(daemon, bigfile):
    name, size, digest = link_big(bigfile, daemon)
    daemon.set("server", "shutdown_timeout", "1s")
    daemon.set("server", "send_timeout", "60s")
    daemon.start()
    c = daemon.conn(timeout=30)
    try:
        c.send(pfp.get_request(name))
        r = c.read_header()
        c.read_body(r, keep=False, limit=1 << 20)
        t0 = time.monotonic()
        daemon.kill(signal.SIGTERM)
        rc = daemon.wait_exit(15)
        elapsed = time.monotonic() - t0
        assert rc == 0, daemon.stderr()
        daemon.stopped_rc = rc
        assert 0.9 <= elapsed < 10, elapsed
        assert not daemon.sock.exists()
    finally:
        c.close()


def test_stop_with_no_clients_is_quick(daemon):
    daemon.start()
    t0 = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - t0 < 5
    assert not daemon.sock.exists()
    assert "stop" in daemon.stderr()


@pytest.mark.pf_timeout(120)
def test_sighup_as_soon_as_the_socket_exists_is_a_reload(daemon):
    """Signals are watched before the socket is made: a SIGHUP sent the
    moment the socket appears (a client, or logrotate, cannot know the
    daemon is not ready yet) is a reload, never the default action that
    ends the process."""
    daemon.put("f", b"x")
    for attempt in range(15):
        daemon.start(wait=False)
        deadline = time.monotonic() + 10
        while not daemon.sock.exists():
            assert daemon.proc.poll() is None, "exited before listening"
            assert time.monotonic() < deadline, "no socket"
            time.sleep(0.0005)
        daemon.kill(signal.SIGHUP)
        daemon.wait_ready()
        wait_for(lambda: "reloaded" in daemon.stderr(), 10, "the reload")
        assert daemon.proc.poll() is None, "attempt %d: SIGHUP ended the daemon" % attempt
        assert daemon.get("f").body == b"x"
        assert daemon.stop() == 0

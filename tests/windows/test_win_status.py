"""Every status pipefiled.exe gives a client without privilege differences,
with the message and exit code a user sees, and whether the connection
stays open (docs/protocol.md: Status, Path rules). EACCES and EPERM for
another account, and EIO, need a real Windows machine (wine does not
enforce tokens or ACLs): see docs/windows.md."""

import os
import subprocess
import time

import pytest

import pfp
from conftest import winpath

HELLO = b"hello world\n"


def check_refused(server, path, name, exit_code):
    """GET path: refused with name, the connection stays open, and the CLI
    exits exit_code saying the server's message."""
    with server.conn() as c:
        r = c.get(path)
        assert r.problems() == [], (path, r)
        assert r.name == name, (path, r)
        assert (r.size, r.mtime, r.body_len, r.body) == (0, 0, 0, b"")
        # still usable: the next request is answered
        assert c.get("/hello.txt").body == HELLO, "connection closed after %s" % name
    cli = server.cli("get", path)
    assert cli.returncode == exit_code, (path, cli.returncode, cli.stderr)
    assert cli.stdout == b""
    assert (name + ":").encode() in cli.stderr, cli.stderr
    return r


@pytest.fixture
def srv(server):
    server.put("hello.txt", HELLO)
    server.put("a.txt", b"the file a.txt\n")
    server.mkdir("sub")
    server.put("longfilename.txt", b"long name\n")
    return server


def test_enoent(srv):
    r = check_refused(srv, "/no/such/file.txt", "ENOENT", 11)
    assert r.message == "ENOENT: no such file"
    check_refused(srv, "/hello.txt/x", "ENOENT", 11)  # a file as a directory


@pytest.mark.parametrize("path", ["../outside.txt", "/a/../../outside.txt", "sub/../../x",
                                  "/..", "../d0/root/hello.txt"])
def test_exdev_dotdot(srv, path):
    (srv.dir / "outside.txt").write_bytes(b"secret outside the root\n")
    check_refused(srv, path, "EXDEV", 14)


def test_dotdot_inside_root_is_fine(srv):
    r = srv.get("/sub/../hello.txt")
    assert (r.name, r.body) == ("OK", HELLO)


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_exdev_link_out_of_root(srv, kind):
    """A link in the root that leads out is EXDEV. Wine cannot make a
    Windows symlink (CreateSymbolicLinkW makes none): these are Unix
    symlinks, which wine follows; the final-path check sees where the
    handle really is."""
    outside = srv.dir / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret\n")
    if kind == "file":
        os.symlink(outside / "secret.txt", srv.root / "esc.txt")
        path = "/esc.txt"
    else:
        os.symlink(outside, srv.root / "escdir")
        path = "/escdir/secret.txt"
    check_refused(srv, path, "EXDEV", 14)


@pytest.mark.parametrize("path", ["..\\outside.txt", "sub\\..\\..\\outside.txt",
                                  "Z:\\etc\\hostname", "\\\\?\\Z:\\etc\\hostname",
                                  "C:\\windows\\win.ini", "\\\\.\\pipe\\x"])
def test_windows_separators_and_drives_refused(srv, path):
    """'\\' is not our separator and a drive or device prefix names no file
    under the root: never a way out."""
    (srv.dir / "outside.txt").write_bytes(b"secret outside the root\n")
    with srv.conn() as c:
        r = c.get(path)
        assert r.problems() == [], r
        assert r.name in ("ENOENT", "EXDEV"), (path, r)
        assert c.get("/hello.txt").body == HELLO


@pytest.mark.parametrize("path", [
    "a.txt:stream", "a.txt::$DATA", "a.txt:$DATA",  # alternate data streams
    "a.txt.", "a.txt..", "a.txt ", "sub./a.txt",  # Win32 strips trailing dots and spaces
    "CON", "nul", "nul.txt", "COM1", "LPT1.log", "sub/AUX", "CONIN$",  # devices
    "LONGFI~1.TXT", "PROGRA~1",  # 8.3 short names
])
def test_windows_aliases_refused(srv, path):
    """Second spellings of a name (streams, stripped dots, short names) and
    device names: no file the daemon serves has them (ENOENT), and none is
    served or opened as a device."""
    check_refused(srv, "/" + path, "ENOENT", 11)


def test_enotreg(srv):
    check_refused(srv, "/sub", "ENOTREG", 13)
    check_refused(srv, "/", "ENOTREG", 13)
    check_refused(srv, "/sub/.", "ENOTREG", 13)
    r = srv.stat("/sub")
    assert r.name == "ENOTREG"


def test_erange(srv):
    with srv.conn() as c:
        r = c.get("/hello.txt", offset=len(HELLO) + 1)
        assert (r.name, r.body_len) == ("ERANGE", 0)
        assert r.problems() == []
        assert c.get("/hello.txt").body == HELLO


def test_eproto_closes(srv):
    with srv.conn() as c:
        r = c.request(pfp.encode_request(pfp.OP_GET, "/hello.txt", magic=b"XX"))
        assert r.name == "EPROTO" and r.problems() == [], r
        assert c.closed_by_peer(10), "the server must close after EPROTO"
    cli = srv.cli("get", "/hello.txt")
    assert cli.returncode == 0  # the daemon serves on


def test_ebusy_over_max_connections(daemon):
    daemon.set("server", "max_connections", "1")
    daemon.set("server", "max_connections_per_user", "1")
    daemon.start()
    daemon.put("hello.txt", HELLO)
    with daemon.conn() as first:
        # answered: the first connection is accepted and counted
        assert first.get("/hello.txt").body == HELLO
        with daemon.conn() as second:
            r = second.read_response()  # sent at accept, without a request
            assert r.name == "EBUSY" and r.problems() == [], r
            assert second.closed_by_peer(10), "the server must close after EBUSY"
        cli = daemon.cli("get", "/hello.txt")
        assert cli.returncode == 16, (cli.returncode, cli.stderr)
        assert b"EBUSY" in cli.stderr
        # the first connection is unaffected
        assert first.get("/hello.txt").body == HELLO
    # once it is gone, clients are served again (the slot is released)
    deadline = time.monotonic() + 10
    while True:
        cli = daemon.cli("get", "/hello.txt")
        if cli.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (cli.returncode, cli.stdout) == (0, HELLO), cli.stderr


def test_administrator_served_by_default(daemon):
    """serve_root_clients = no (the default) refuses LocalSystem only: wine's
    user, an administrator, is served. (A LocalSystem client, refused with
    EPERM, needs a real Windows machine: wine runs everything as one user.)"""
    daemon.start()
    daemon.put("hello.txt", HELLO)
    r = daemon.get("/hello.txt")
    assert (r.name, r.body) == ("OK", HELLO), r


@pytest.mark.parametrize("form", ["DOMAIN\\user", "user", "as logged"])
def test_eperm_by_policy(daemon, form):
    """deny_users naming the client's own account: EPERM, the connection
    stays open. The account is named as the access log shows it
    (user@DOMAIN), or in the forms Windows knows (DOMAIN\\user, user)."""
    daemon.start()
    daemon.put("hello.txt", HELLO)
    assert daemon.get("/hello.txt").name == "OK"
    daemon.stop()  # the access log is complete once the daemon is gone
    logged = daemon.log_records()[-1]["user"] if daemon.log_lines() else None
    assert logged and "@" in logged, "the access log's user is not user@DOMAIN: %r" % logged
    user, domain = logged.rsplit("@", 1)
    name = {"DOMAIN\\user": "%s\\%s" % (domain, user), "user": user, "as logged": logged}[form]
    daemon.set("identity", "deny_users", name)
    daemon.start()
    with daemon.conn() as c:
        r = c.get("/hello.txt")
        assert (r.name, r.body_len) == ("EPERM", 0), (name, r)
        assert r.problems() == []
        assert c.stat("/hello.txt").name == "EPERM"
    cli = daemon.cli("get", "/hello.txt")
    assert cli.returncode == 18 and b"EPERM:" in cli.stderr, (cli.returncode, cli.stderr)


def test_ebusy_locked_file(srv):
    """A file another program holds open without sharing: EBUSY at once,
    saying so, and the connection stays open (docs/protocol.md)."""
    holder = srv.wine.popen(srv.wine.exe("holdfile.exe"), winpath(srv.root / "hello.txt"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"held", holder.stderr.read()
    try:
        with srv.conn() as c:
            t0 = time.monotonic()
            r = c.get("/hello.txt")
            assert r.name == "EBUSY" and r.problems() == [], r
            assert "leased or locked" in r.message, r.message
            assert time.monotonic() - t0 < 5, "the daemon waited for the lock"
            # open afterwards: another file is served on the same connection
            assert c.get("/a.txt").body == b"the file a.txt\n"
        cli = srv.cli("get", "/hello.txt")
        assert cli.returncode == 16 and b"EBUSY" in cli.stderr, (cli.returncode, cli.stderr)
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=15) == 0
    # released: served again
    assert srv.get("/hello.txt").body == HELLO


@pytest.mark.parametrize("level", ["impersonation", "delegation"])
def test_client_allowing_impersonation_served(srv, level):
    with srv.conn(sqos=level) as c:
        r = c.get("/hello.txt")
        assert (r.name, r.body) == ("OK", HELLO), (level, r)


@pytest.mark.parametrize("level", ["anonymous", "identification"])
def test_client_withholding_impersonation_eperm(srv, level):
    """A client that connects at the Anonymous or Identification level lets
    the server learn, not act as, its identity: EPERM, saying why."""
    with srv.conn(sqos=level) as c:
        r = c.get("/hello.txt")
        if r.name == "OK":
            pytest.xfail("wine ignores the client's impersonation level "
                         "(SECURITY_SQOS_PRESENT): needs a real Windows machine")
        assert r.name == "EPERM" and r.problems() == [], (level, r)
        assert "impersonation" in r.message, r.message


def test_cannot_connect(wine, workdir):
    """No daemon on the pipe: pipefile.exe says so and exits 69."""
    r = wine.run(wine.exe("pipefile.exe"), "-s", "\\\\.\\pipe\\pftest-nobody-here",
                 "get", "/x", timeout=30)
    assert r.returncode == 69, (r.returncode, r.stderr)
    assert b"pftest-nobody-here" in r.stderr, r.stderr

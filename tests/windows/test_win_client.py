"""pipefile.exe's pipe and server checks: the pipe from $PIPEFILE_SOCKET,
--server-user / $PIPEFILE_SERVER_USER naming the one account to trust
(refused: exit 77, nothing sent), bad pipe names."""

import pytest

LOCAL_SERVICE = "S-1-5-19"  # NT AUTHORITY\LocalService: not who serves here


@pytest.fixture
def srv(server):
    server.put("hello.txt", b"hello world\n")
    return server


def logged_user(d):
    d.stop()
    user = d.log_records()[-1]["user"]
    d.start()
    name, domain = user.rsplit("@", 1)
    return name, domain


def test_pipe_from_environment(srv):
    r = srv.wine.run(srv.wine.exe("pipefile.exe"), "get", "/hello.txt",
                     env={"PIPEFILE_SOCKET": srv.pipe}, timeout=60)
    assert (r.returncode, r.stdout) == (0, b"hello world\n"), r.stderr


def test_server_user_matches(srv):
    assert srv.cli("get", "/hello.txt").returncode == 0
    name, domain = logged_user(srv)
    for who in ("%s\\%s" % (domain, name), name):
        r = srv.cli("--server-user", who, "get", "/hello.txt")
        assert (r.returncode, r.stdout) == (0, b"hello world\n"), (who, r.stderr)


def test_server_user_refused(srv):
    n = len(srv.log_lines())
    r = srv.cli("--server-user", LOCAL_SERVICE, "get", "/hello.txt")
    assert r.returncode == 77, (r.returncode, r.stderr)
    assert r.stdout == b""
    assert b"not the expected" in r.stderr, r.stderr
    r = srv.wine.run(srv.wine.exe("pipefile.exe"), "-s", srv.pipe, "get", "/hello.txt",
                     env={"PIPEFILE_SERVER_USER": LOCAL_SERVICE}, timeout=60)
    assert r.returncode == 77, (r.returncode, r.stderr)
    # nothing was sent: the daemon logged no request
    srv.stop()
    assert len(srv.log_lines()) == n


def test_server_user_unknown_is_usage_error(srv):
    r = srv.cli("--server-user", "no-such-account-here", "get", "/hello.txt")
    assert r.returncode == 64, (r.returncode, r.stderr)


@pytest.mark.parametrize("pipe", ["Z:\\tmp\\not-a-pipe", "\\\\.\\pipe\\" + "x" * 300, "pipefiled"])
def test_bad_pipe_names(wine, pipe):
    r = wine.run(wine.exe("pipefile.exe"), "-s", pipe, "get", "/x", timeout=30)
    assert r.returncode in (64, 69), (pipe, r.returncode, r.stderr)
    assert r.stderr.startswith(b"pipefile: "), r.stderr

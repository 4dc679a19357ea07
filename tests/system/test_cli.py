"""The pipefile CLI against the real daemon: exit codes per status (10 +
status), usage 64, cannot connect 69, output error 73, short body 76
(test_disconnect.py), untrusted server 77 (test_impostor.py); errors read "pipefile: PATH: message"; -o never leaves
a file on failure; $PIPEFILE_SOCKET is the default socket."""

import re

import pytest

import pfp
from conftest import need_root


@pytest.fixture
def srv(daemon):
    daemon.put("f", b"file bytes\n")
    daemon.mkdir("dir")
    daemon.start()
    return daemon


@pytest.mark.parametrize("path,code", [
    ("missing", 11), ("dir", 13), ("../f", 14), ("/", 13),
])
def test_status_exit_codes(srv, runner, workdir, path, code):
    for cmd in (["get", path], ["stat", path], ["get", path, "-o", workdir / "out"]):
        p = runner.cli(None, "-s", srv.sock, *cmd)
        assert p.returncode == code, (cmd, p.returncode, p.stderr)
        assert p.stderr.startswith(b"pipefile: %s: " % path.encode()), p.stderr
        assert p.stderr.count(b"\n") == 1, p.stderr
        assert p.stdout == b""
        assert not (workdir / "out").exists()


def test_eperm_exit_code(daemon, runner):
    need_root()  # the test process is the root client refused here
    daemon.put("f", b"12345")
    daemon.set("identity", "serve_root_clients", "no")
    daemon.start()
    p = runner.cli(None, "-s", daemon.sock, "get", "f")
    assert p.returncode == 18, p.stderr
    assert p.stderr.startswith(b"pipefile: f: EPERM"), p.stderr
    assert p.stdout == b""


def test_ebusy_exit_code(daemon, runner):
    daemon.put("f", b"x")
    daemon.set("server", "max_connections", "1")
    daemon.start()
    with daemon.conn() as c:
        assert c.get("f").name == "OK"
        p = runner.cli(None, "-s", daemon.sock, "get", "f")
        assert p.returncode == 16, p.stderr
        assert p.stderr.startswith(b"pipefile: f: "), p.stderr


def test_cannot_connect_69(runner, workdir):
    p = runner.cli(None, "-s", workdir / "no.sock", "get", "f")
    assert p.returncode == 69, p.stderr
    assert p.stderr.startswith(b"pipefile: f: "), p.stderr
    assert str(workdir / "no.sock").encode() in p.stderr


@pytest.mark.parametrize("args", [
    [], ["get"], ["frob", "x"], ["get", "f", "--offset", "abc"], ["get", "f", "--length", "-1"],
    ["stat", "f", "extra"], ["stat"], ["get", "f", "--bogus"], ["stat", "f", "--offset", "1"],
])
def test_usage_64(srv, runner, args):
    p = runner.cli(None, "-s", srv.sock, *args)
    assert p.returncode == 64, (args, p.returncode, p.stderr)
    assert p.stderr, args


def test_output_error_73(srv, runner, workdir):
    p = runner.cli(None, "-s", srv.sock, "get", "f", "-o", workdir / "no" / "dir" / "out")
    assert p.returncode == 73, p.stderr
    assert p.stderr.startswith(b"pipefile: f: "), p.stderr


def test_output_replaces_existing_file_only_when_complete(srv, runner, workdir):
    out = workdir / "out"
    out.write_bytes(b"old")
    p = runner.cli(None, "-s", srv.sock, "get", "missing", "-o", out)
    assert p.returncode == 11
    assert out.read_bytes() == b"old"  # a failure never touches OUT
    p = runner.cli(None, "-s", srv.sock, "get", "f", "-o", out)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == b"file bytes\n"
    assert sorted(x.name for x in workdir.iterdir()) == ["d0", "out"]  # no temp file left


def test_socket_from_environment(srv, runner):
    p = runner.cli(None, "get", "f", env={"PIPEFILE_SOCKET": str(srv.sock)})
    assert (p.returncode, p.stdout) == (0, b"file bytes\n"), p.stderr


# What each exit code means, written out here (not derived from the C
# table, so a code paired with the wrong meaning there shows): 10 + status
# for the server's answers (docs/protocol.md), sysexits.h's for the rest.
STATUS_MEANING = {
    "ENOENT": "no such file",
    "EACCES": "permission denied",
    "ENOTREG": "not a regular file",
    "EXDEV": "path leaves the served root",
    "EPROTO": "malformed request",
    "EBUSY": "connection limit reached",
    "EIO": "input/output error",
    "EPERM": "the server will not act as this client",
    "ERANGE": "offset beyond end of file",
}
EXIT_MEANING = dict(
    [(0, "success")] +
    [(10 + pfp.CODE[n], "the server answered %s: %s" % (n, m)) for n, m in STATUS_MEANING.items()] +
    [(64, "usage error"), (69, "cannot connect to the socket"),
     (73, "cannot create or write the output"),
     (76, "protocol error, connection lost, or short body"),
     # test_impostor.py: a socket served by an untrusted uid
     (77, "the socket is served by a uid not trusted (see --server-uid); nothing was sent")])


def help_exit_codes(text):
    """{code: meaning} from --help's "exit codes:" list; a meaning may go on
    over more (deeper indented) lines. Fails on a code listed twice."""
    codes = {}
    last = None
    for line in text.split("exit codes:\n", 1)[1].splitlines():
        m = re.match(r"^ +(\d+)  (\S.*)$", line)
        if m:
            code = int(m.group(1))
            assert code not in codes, "exit code %d listed twice" % code
            codes[code] = m.group(2).strip()
            last = code
        elif line.strip() and last is not None:
            codes[last] += " " + line.strip()
        elif not line.strip():
            last = None
    return codes


def test_help_lists_exit_codes(runner):
    p = runner.cli(None, "--help")
    assert p.returncode == 0
    out = p.stdout.decode()
    assert set(STATUS_MEANING) == set(pfp.CODE) - {"OK"}  # every status has its code
    assert help_exit_codes(out) == EXIT_MEANING
    assert "--server-uid UID" in out and "$PIPEFILE_SERVER_UID" in out


def test_cli_as_other_user_eacces(daemon, runner):
    need_root()
    from conftest import USER_C
    daemon.put("secret", b"s", mode=0o600)
    daemon.start()
    p = runner.cli(USER_C, "-s", daemon.sock, "get", "secret")
    assert p.returncode == 12, p.stderr
    assert p.stderr.startswith(b"pipefile: secret: EACCES") or b"permission" in p.stderr.lower(), p.stderr

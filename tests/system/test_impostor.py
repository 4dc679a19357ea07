"""The client checks who serves the socket before it sends anything (issue 5,
review finding F2): in a sticky directory (mode 1777, which strict_modes
allows) another user can bind the daemon's name while the daemon restarts.
`pipefile` talks only to a server running as root, as the owner of the
socket's directory, or as the client's own uid; `--server-uid UID` or
$PIPEFILE_SERVER_UID names the one uid to accept instead. A refusal exits 77
and sends the impostor nothing, not even the path asked for."""

import json
import os
import subprocess

import pytest

from conftest import (CHILD_ENV, PY, UID_A, UID_B, USER_A, USER_B, need_root)

UNTRUSTED = 77
FORGED = b"forged by the impostor\n"

# A server speaking just enough PFP/1: accept one connection, read what the
# client sends (until a whole request, EOF or 20 s), answer a request with OK
# and FORGED, then print what it got as JSON.
FAKE = r"""
import json, os, socket, struct, sys
path, forged = sys.argv[1], sys.argv[2].encode()
ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ls.bind(path)
os.chmod(path, 0o666)  # anyone may connect, as to the real daemon
ls.listen(4)
ls.settimeout(60)
print("ready", flush=True)
c, _ = ls.accept()
c.settimeout(20)
got = b""
try:
    while True:
        if len(got) >= 22 and len(got) >= 22 + struct.unpack(">H", got[4:6])[0]:
            break
        b = c.recv(4096)
        if not b:
            break
        got += b
except socket.timeout:
    pass
if len(got) >= 22:
    c.sendall(struct.pack(">2sBBHHQqQ", b"pf", 1, 0, 0, 0, len(forged), 0,
                          len(forged)) + forged)
c.close()
print(json.dumps({"bytes": len(got), "path": got[22:].decode(errors="replace")}),
      flush=True)
"""


def make_dir(path, mode, uid=0):
    path.mkdir()
    os.chown(path, uid, uid)
    os.chmod(path, mode)
    return path


@pytest.fixture
def fake(runner, workdir):
    """Start FAKE as user on sock; returns a function that waits for and
    returns its record of the one connection."""
    def start(user, sock):
        p = subprocess.Popen(user.setpriv() + [PY, "-I", "-c", FAKE, str(sock),
                                               FORGED.decode()],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             env=CHILD_ENV, cwd="/")
        runner.procs.append(p)
        assert p.stdout.readline() == b"ready\n"

        def record():
            out, _ = p.communicate(timeout=60)
            assert p.returncode == 0
            return json.loads(out)
        return record
    return start


def refusal(sock, uid):
    return ("%s is served by uid %d, which is neither root nor the owner of its "
            "directory; refusing to talk to it (another user's socket?)"
            % (sock, uid)).encode()


@pytest.mark.parametrize("cmd", [["get", "secret/plan"], ["stat", "secret/plan"],
                                 ["get", "secret/plan", "-o", "out"]])
def test_other_users_socket_in_sticky_dir_is_refused(fake, runner, workdir, cmd):
    """The squat of F2: UID_A's socket in a root-owned sticky directory. UID_B
    gets exit 77 and the message, no forged bytes, no output file, and the
    impostor learns nothing (it receives zero bytes)."""
    need_root()
    sock = make_dir(workdir / "stk", 0o1777) / "pf.sock"
    record = fake(USER_A, sock)
    os.chmod(workdir, 0o777)  # lets B create -o's temporary file
    p = runner.cli(USER_B, "-s", sock, *cmd)
    assert p.returncode == UNTRUSTED, p.stderr
    assert p.stderr == b"pipefile: secret/plan: " + refusal(sock, UID_A) + b"\n"
    assert p.stdout == b""
    assert not (workdir / "out").exists()
    assert not [f for f in workdir.iterdir() if f.name.startswith(".out")]
    assert record() == {"bytes": 0, "path": ""}


def test_server_uid_names_the_server(fake, runner, workdir):
    """--server-uid UID (or $PIPEFILE_SERVER_UID) is an explicit choice of
    server: the same socket is then talked to."""
    need_root()
    sock = make_dir(workdir / "stk", 0o1777) / "pf.sock"
    record = fake(USER_A, sock)
    p = runner.cli(USER_B, "-s", sock, "--server-uid", UID_A, "get", "f")
    assert (p.returncode, p.stdout) == (0, FORGED), p.stderr
    assert record()["path"] == "f"
    sock.unlink()
    record = fake(USER_A, sock)
    p = runner.cli(USER_B, "-s", sock, "get", "g",
                   env={"PIPEFILE_SERVER_UID": str(UID_A)})
    assert (p.returncode, p.stdout) == (0, FORGED), p.stderr
    assert record()["path"] == "g"


def test_dir_owner_and_self_are_trusted(fake, runner, workdir):
    """A daemon running as its own user in a directory that user owns (like
    pipefiled in /run/pipefiled), and a user's own daemon in /tmp."""
    need_root()
    sock = make_dir(workdir / "own", 0o755, uid=UID_A) / "pf.sock"
    record = fake(USER_A, sock)
    p = runner.cli(USER_B, "-s", sock, "get", "f")
    assert (p.returncode, p.stdout) == (0, FORGED), p.stderr
    assert record()["bytes"] > 0
    sock = make_dir(workdir / "stk", 0o1777) / "pf.sock"
    record = fake(USER_B, sock)
    p = runner.cli(USER_B, "-s", sock, "get", "f")
    assert (p.returncode, p.stdout) == (0, FORGED), p.stderr
    assert record()["bytes"] > 0


def test_root_daemon_in_sticky_dir_is_accepted(daemon, runner, workdir):
    """The real daemon runs as root: the default rule, and --server-uid 0,
    accept it; naming another uid refuses it, since the option replaces the
    rule."""
    need_root()
    stk = make_dir(workdir / "stk", 0o1777)
    daemon.sock = stk / "pf.sock"
    daemon.set("server", "socket", str(daemon.sock))
    daemon.put("f", b"the real bytes\n")
    daemon.start()
    p = runner.cli(USER_B, "-s", daemon.sock, "get", "f")
    assert (p.returncode, p.stdout) == (0, b"the real bytes\n"), p.stderr
    p = runner.cli(USER_B, "-s", daemon.sock, "--server-uid", "0", "stat", "f")
    assert p.returncode == 0, p.stderr
    p = runner.cli(USER_B, "-s", daemon.sock, "get", "f",
                   env={"PIPEFILE_SERVER_UID": str(UID_B)})
    assert p.returncode == UNTRUSTED, p.stderr
    assert p.stderr == ("pipefile: f: %s is served by uid 0, not the expected uid "
                        "%d; refusing to talk to it\n" % (daemon.sock, UID_B)).encode()
    assert p.stdout == b""


@pytest.mark.parametrize("how", ["option", "env"])
@pytest.mark.parametrize("bad", ["-1", "abc", "4294967295", "1e3", " 5"])
def test_bad_server_uid_is_a_usage_error(runner, workdir, how, bad):
    """A uid that cannot be meant is never taken for "use the default rule"."""
    if how == "option":
        p = runner.cli(None, "-s", workdir / "none.sock", "--server-uid=" + bad,
                       "get", "f")
    else:
        p = runner.cli(None, "-s", workdir / "none.sock", "get", "f",
                       env={"PIPEFILE_SERVER_UID": bad})
    assert p.returncode == 64, p.stderr
    assert b"is not a uid" in p.stderr

"""The compat listener: the .NET documentation sample's named-pipe protocol
([compat] pipe_name; docs/protocol.md, "The compat protocol").

The main client is a real one whose transport no one here wrote:
tests/system/compat/Client.cs, the sample's NamedPipeClientStream client
with its StreamString framing, compiled with mcs and run with mono as
synthetic uids. Mono's NamedPipeClientStream on Linux is corefx's: it
connects to Path.GetTempPath() + "CoreFxPipe_" + NAME, a Unix socket, and
these tests run it with TMPDIR=/tmp so it looks where the daemon listens.
A small raw client in Python checks what mono cannot send (a malformed
name, a name cut short, silence).
"""

import hashlib
import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (CHILD_ENV, GID_SHARED, HERE, UID_A, UID_B, USER_A,
                      USER_B, need, need_root, wait_for)

GREETING = "I am the one true server!"
CLIENT_CS = HERE / "compat" / "Client.cs"
TEXT_MAX = 65534  # bytes of UTF-16 one frame can carry (whole units)
_names = iter(range(1 << 30))


def pipe_name():
    """A pipe name no other test (or run) uses at the same time."""
    return "pft%d_%d" % (os.getpid(), next(_names))


def compat_path(name):
    return "/tmp/CoreFxPipe_" + name


# ------------------------------------------------------------ the C# client

@pytest.fixture(scope="session")
def client_exe():
    """Client.cs compiled once per source and compiler, kept in a
    world-readable cache dir under /tmp (mcs takes a second or two)."""
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    need(mcs is not None and mono is not None,
         "needs mcs and mono (Debian packages mono-mcs, mono-runtime)")
    src = CLIENT_CS.read_bytes()
    ver = subprocess.run([mcs, "--version"], capture_output=True, timeout=60).stdout
    key = hashlib.sha256(src + b"\0" + ver).hexdigest()[:16]
    d = Path(tempfile.gettempdir()) / ("pipefiled-compat-client-" + key)
    exe = d / "Client.exe"
    if not exe.exists():
        tmp = Path(tempfile.mkdtemp(prefix="pipefiled-compat-build-", dir="/tmp"))
        try:
            p = subprocess.run([mcs, "-nologo", "-out:" + str(tmp / "Client.exe"),
                                str(CLIENT_CS)], capture_output=True, timeout=120)
            assert p.returncode == 0, "mcs failed:\n%s%s" % (
                p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
            os.chmod(tmp, 0o755)
            os.chmod(tmp / "Client.exe", 0o644)
            try:
                os.rename(tmp, d)  # atomic: a concurrent run may win
            except OSError:
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    assert exe.exists()
    # The cache dir must not be anyone's to change under us.
    st = os.lstat(d)
    assert st.st_uid == 0 and not st.st_mode & 0o022, "cache dir %s unsafe" % d
    return exe


def home_for(workdir, user):
    """A HOME the user can write (mono keeps its config and a shared-memory
    file there)."""
    h = workdir / ("home-%d" % user.uid)
    if not h.exists():
        h.mkdir(mode=0o700)
        os.chown(h, user.uid, user.gid)
    return h


def run_client(client_exe, workdir, user, name, file_name, timeout=60):
    """Run Client.exe as user: (exit code, stdout bytes, stderr text)."""
    env = dict(CHILD_ENV, HOME=str(home_for(workdir, user)), TMPDIR="/tmp",
               MONO_ENV_OPTIONS="", XDG_CONFIG_HOME=str(home_for(workdir, user)))
    p = subprocess.run(user.setpriv() + [shutil.which("mono"), str(client_exe),
                                         name, file_name],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, env=env, cwd=str(workdir))
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def fetch(client_exe, workdir, user, name, file_name):
    """The text Client.exe prints (as str) for file_name; it must exit 0."""
    rc, out, err = run_client(client_exe, workdir, user, name, file_name)
    assert rc == 0, "Client.exe %s exited %d: %s" % (file_name, rc, err)
    return out.decode("utf-8")


# ------------------------------------------------------------ raw client

def frame(data):
    return struct.pack(">H", len(data)) + data


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("got %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def read_frame(s):
    (n,) = struct.unpack(">H", read_exact(s, 2))
    return read_exact(s, n)


def raw_connect(name, timeout=20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(compat_path(name))
    return s


def raw_fetch(name, payload):
    """Greeting, then payload (raw bytes of the name frame), then the
    answer's text (decoded)."""
    with raw_connect(name) as s:
        assert read_frame(s).decode("utf-16-le") == GREETING
        s.sendall(payload)
        text = read_frame(s).decode("utf-16-le")
        assert s.recv(1) == b"", "the server closes after its answer"
        return text


# ------------------------------------------------------------ the log

_TOKEN = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def log_records(d):
    """The access log's lines as dicts of strings (path unquoted)."""
    out = []
    for line in d.log_lines():
        rec = {k: v for k, v in _TOKEN.findall(line.decode())}
        for k in ("path", "resolved"):
            v = rec.get(k, "-")
            rec[k] = v[1:-1] if v.startswith('"') else v
        out.append(rec)
    return out


def wait_records(d, n, timeout=15):
    wait_for(lambda: len(log_records(d)) >= n, timeout, "%d access-log lines" % n)
    return log_records(d)


def compat_daemon(daemon, **server):
    name = pipe_name()
    daemon.set("compat", "pipe_name", name)
    for k, v in server.items():
        daemon.set("server", k, v)
    daemon.start()
    wait_for(lambda: os.path.exists(compat_path(name)), 10, "the compat socket")
    return name


# ------------------------------------------------------------ tests

def test_socket_and_greeting(daemon):
    """The socket is where .NET clients look, a socket anyone may connect
    to, the greeting is the sample's frame, and it is gone after stop."""
    name = compat_daemon(daemon)
    st = os.lstat(compat_path(name))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert "compat: the .NET sample's protocol (pipe name %s) on %s" % (
        name, compat_path(name)) in daemon.stderr()
    with raw_connect(name) as s:
        g = read_exact(s, 2 + 2 * len(GREETING))
        assert g == frame(GREETING.encode("utf-16-le"))
    daemon.stop()
    assert not os.path.exists(compat_path(name))


def test_off_by_default(daemon):
    daemon.start()
    assert "compat:" not in daemon.stderr()


def test_two_users(daemon, client_exe, workdir):
    """The real client as two uids: one may read the file and gets its text,
    the other gets an error text; the log has each uid with proto=compat."""
    need_root()
    daemon.put("only-a.txt", "for A's eyes only\n".encode(), mode=0o600,
               uid=UID_A, gid=UID_A)
    name = compat_daemon(daemon)
    assert fetch(client_exe, workdir, USER_A, name, "only-a.txt") == \
        "for A's eyes only\n"
    assert fetch(client_exe, workdir, USER_B, name, "only-a.txt") == \
        "pipefiled: EACCES: permission denied"
    recs = wait_records(daemon, 2)
    by_uid = {r["uid"]: r for r in recs}
    a, b = by_uid[str(UID_A)], by_uid[str(UID_B)]
    assert (a["proto"], a["op"], a["path"], a["status"], a["size"]) == \
        ("compat", "GET", "only-a.txt", "OK", "18")
    assert a["bytes"] == str(2 * 18)  # the text's bytes as UTF-16
    assert (b["proto"], b["status"], b["bytes"]) == ("compat", "EACCES", "0")
    assert b["gid"] == str(UID_B)


def test_byte_order_marks(daemon, client_exe, workdir):
    """UTF-8, UTF-16LE and UTF-16BE marks are honoured and stripped, as
    File.ReadAllText does; without one the file is UTF-8."""
    need_root()
    text = "h\u00e9llo, w\u00f6rld \u20ac \U0001F600\n"
    daemon.put("plain.txt", text.encode("utf-8"))
    daemon.put("bom8.txt", b"\xef\xbb\xbf" + text.encode("utf-8"))
    daemon.put("bom16le.txt", b"\xff\xfe" + text.encode("utf-16-le"))
    daemon.put("bom16be.txt", b"\xfe\xff" + text.encode("utf-16-be"))
    name = compat_daemon(daemon)
    for f in ("plain.txt", "bom8.txt", "bom16le.txt", "bom16be.txt"):
        assert fetch(client_exe, workdir, USER_A, name, f) == text, f


def test_invalid_utf8(daemon, client_exe, workdir):
    """Invalid UTF-8 becomes U+FFFD, one per maximal subpart (what .NET's
    decoder does, and Python's "replace")."""
    need_root()
    data = b"ok \xff mid \xe2\x82 x \xed\xa0\x80 y \xf0\x90\x80A end \xe2\x82"
    daemon.put("bad.txt", data)
    name = compat_daemon(daemon)
    got = fetch(client_exe, workdir, USER_A, name, "bad.txt")
    assert got == data.decode("utf-8", "replace")
    assert got.count("\ufffd") == 7


def test_size_limit(daemon, client_exe, workdir):
    """The largest text that fits (32767 UTF-16 units, 65534 bytes) comes
    whole; one character more is refused with a text naming the limit and
    the file's size, never cut, and logged as ERANGE."""
    need_root()
    fits = ("0123456789abcdef" * 2048)[:32767]
    assert len(fits.encode("utf-16-le")) == TEXT_MAX
    daemon.put("fits.txt", fits.encode())
    daemon.put("over.txt", (fits + "!").encode())
    # The largest file that can fit at all: a UTF-8 mark and 32767
    # three-byte characters (98304 bytes).
    daemon.put("fits-euro.txt", b"\xef\xbb\xbf" + ("\u20ac" * 32767).encode())
    daemon.put("over-euro.txt", b"\xef\xbb\xbf" + ("\u20ac" * 32768).encode())
    name = compat_daemon(daemon)
    assert fetch(client_exe, workdir, USER_A, name, "fits.txt") == fits
    assert fetch(client_exe, workdir, USER_A, name, "fits-euro.txt") == \
        "\u20ac" * 32767
    over = fetch(client_exe, workdir, USER_A, name, "over.txt")
    assert over == ("pipefiled: ERANGE: the file's text does not fit in one "
                    "frame (at most 65534 bytes of UTF-16); the file has "
                    "32768 bytes, 65536 bytes as UTF-16")
    over = fetch(client_exe, workdir, USER_A, name, "over-euro.txt")
    assert over == ("pipefiled: ERANGE: the file's text does not fit in one "
                    "frame (at most 65534 bytes of UTF-16); the file has "
                    "98307 bytes")
    recs = wait_records(daemon, 4)
    st = {r["path"]: (r["status"], r["bytes"], r["size"]) for r in recs}
    assert st["fits.txt"] == ("OK", "65534", "32767")
    assert st["fits-euro.txt"] == ("OK", "65534", "98304")
    assert st["over.txt"] == ("ERANGE", "0", "32768")
    assert st["over-euro.txt"] == ("ERANGE", "0", "98307")


def test_paths_and_errors(daemon, client_exe, workdir):
    """Names are paths relative to the root, as in PFP/1, with or without a
    leading '/'; errors come back as one-frame texts."""
    need_root()
    daemon.put("sub/f.txt", b"in sub\n")
    name = compat_daemon(daemon)
    assert fetch(client_exe, workdir, USER_A, name, "/sub/f.txt") == "in sub\n"
    assert fetch(client_exe, workdir, USER_A, name, "sub/./f.txt") == "in sub\n"
    assert fetch(client_exe, workdir, USER_A, name, "nope") == \
        "pipefiled: ENOENT: no such file"
    assert fetch(client_exe, workdir, USER_A, name, "../etc/passwd") == \
        "pipefiled: EXDEV: path leaves the served root"
    assert fetch(client_exe, workdir, USER_A, name, "sub") == \
        "pipefiled: ENOTREG: not a regular file"
    recs = wait_records(daemon, 5)
    assert [r["resolved"] for r in recs[:2]] == ["sub/f.txt", "sub/f.txt"]
    assert [r["status"] for r in recs] == ["OK", "OK", "ENOENT", "EXDEV",
                                           "ENOTREG"]


def test_policy(daemon):
    """[identity] applies as for PFP/1 (raw client, as root: refused unless
    root clients are served)."""
    daemon.put("f.txt", b"x")
    daemon.set("identity", "serve_root_clients", "no")
    name = compat_daemon(daemon)
    text = raw_fetch(name, frame("f.txt".encode("utf-16-le")))
    assert text.startswith("pipefiled: EPERM: "), text
    rec = wait_records(daemon, 1)[0]
    assert (rec["proto"], rec["status"], rec["uid"]) == ("compat", "EPERM", "0")


def test_bad_names(daemon):
    """What no .NET client sends: a lone surrogate, an odd length, a NUL,
    a name longer than any path; each refused with a text and logged."""
    daemon.put("f.txt", b"x")
    name = compat_daemon(daemon)
    lone = b"f\x00\x3d\xd8"
    assert raw_fetch(name, frame(lone)) == \
        "pipefiled: EPROTO: the file name is not valid UTF-16 (or holds U+0000)"
    assert raw_fetch(name, frame(b"abc")).startswith("pipefiled: EPROTO: ")
    assert raw_fetch(name, frame("f\0".encode("utf-16-le"))).startswith(
        "pipefiled: EPROTO: ")
    assert raw_fetch(name, frame(b"a\x00" * 8193)) == \
        "pipefiled: ENOENT: file name too long"
    assert raw_fetch(name, frame("f.txt".encode("utf-16-le"))) == "x"
    recs = wait_records(daemon, 5)
    assert [r["status"] for r in recs] == ["EPROTO"] * 3 + ["ENOENT", "OK"]


def test_timeouts(daemon):
    """request_timeout bounds the wait for the name: a client that sends
    nothing is closed without a line; one that sends half a name gets an
    error text and an EPROTO line."""
    name = compat_daemon(daemon, request_timeout="500ms")
    with raw_connect(name) as s:
        read_frame(s)
        t0 = time.monotonic()
        assert s.recv(1) == b""
        assert time.monotonic() - t0 < 5
    with raw_connect(name) as s:
        read_frame(s)
        s.sendall(b"\x00\x10ab")
        assert read_frame(s).decode("utf-16-le") == \
            "pipefiled: EPROTO: request timed out"
    recs = wait_records(daemon, 1)
    time.sleep(0.3)
    recs = log_records(daemon)
    assert len(recs) == 1
    assert (recs[0]["proto"], recs[0]["status"]) == ("compat", "EPROTO")


def test_pfp_alongside(daemon):
    """The PFP/1 socket still serves, beside the compat one, and connection
    ids stay unique across both."""
    daemon.put("f.txt", b"both")
    name = compat_daemon(daemon)
    assert raw_fetch(name, frame("f.txt".encode("utf-16-le"))) == "both"
    r = daemon.get("/f.txt")
    assert r.body == b"both"
    recs = wait_records(daemon, 2)
    assert sorted(r["proto"] for r in recs) == ["compat", "pfp1"]
    assert len({r["conn"] for r in recs}) == 2


def test_limit_refusal(daemon):
    """A client over max_connections is greeted, and its name read, so that
    it reads the refusal as its answer (EBUSY) instead of failing to send;
    the one holding the place is unaffected."""
    daemon.put("f.txt", b"held")
    name = compat_daemon(daemon, max_connections="1")
    with raw_connect(name) as first:
        read_frame(first)  # greeted: its place is held
        text = raw_fetch(name, frame("f.txt".encode("utf-16-le")))
        assert text == "pipefiled: EBUSY: connection limit (1) reached", text
        first.sendall(frame("f.txt".encode("utf-16-le")))
        assert read_frame(first).decode("utf-16-le") == "held"
    recs = wait_records(daemon, 2)
    assert sorted(r["status"] for r in recs) == ["EBUSY", "OK"]
    assert all(r["proto"] == "compat" for r in recs)


def test_shutdown_and_reload(daemon):
    """SIGHUP keeps the compat socket (pipe_name takes a restart, and says
    so); SIGTERM closes a greeted client that has not asked yet at once,
    rather than after request_timeout, and removes the socket."""
    import signal
    name = compat_daemon(daemon, request_timeout="60s")
    daemon.config["compat"]["pipe_name"] = name + "x"
    daemon.write_ini()
    daemon.kill(signal.SIGHUP)
    wait_for(lambda: "pipe_name changed; that takes a restart" in daemon.stderr(),
             10, "the restart warning")
    assert os.path.exists(compat_path(name))
    assert not os.path.exists(compat_path(name + "x"))
    with raw_connect(name) as s:
        read_frame(s)
        t0 = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - t0 < 10
        assert s.recv(1) == b""
    assert not os.path.exists(compat_path(name))
    assert log_records(daemon) == []  # nothing was asked

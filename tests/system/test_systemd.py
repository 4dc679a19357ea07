"""pipefiled under a service manager, without PID-1 systemd: socket
activation (the inherited socket is served and never removed; a bad one
refuses the start), readiness and status on $NOTIFY_SOCKET (READY only once
accepting, RELOADING/READY around SIGHUP, STOPPING, watchdog pings), and the
journal's <N> priority marks on a stderr named by JOURNAL_STREAM.

The service manager is played by this file: a Python launcher passes
sockets the way systemd does (descriptors from 3, LISTEN_FDS, LISTEN_PID of
the exec'd process, LISTEN_FDNAMES), and the test binds the notify socket
before starting the daemon. systemd-socket-activate (Debian package
`systemd`) is used too where it is installed."""

import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time

import pytest

import pfp
from conftest import PY, Daemon, listening, need, wait_for

# The launcher: dup the given descriptors to 3, 4, ..., set LISTEN_* for its
# own pid (which the daemon keeps across exec), fill "{pid}" into the other
# variables, exec. argv: NFDS FD... NAMES|- -- ENV=VALUE... -- PROGRAM ARGS
LAUNCHER = r"""
import fcntl, os, sys
a = sys.argv[1:]
n = int(a.pop(0))
src = [int(a.pop(0)) for _ in range(n)]
names = a.pop(0)
assert a.pop(0) == "--"
env = {}
while a[0] != "--":
    k, v = a.pop(0).split("=", 1)
    env[k] = v.replace("{pid}", str(os.getpid()))
a.pop(0)
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in src]  # clear of 3, 4, ...
for fd in src:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
if n:
    env["LISTEN_FDS"] = str(n)
    env["LISTEN_PID"] = str(os.getpid())
    if names != "-":
        env["LISTEN_FDNAMES"] = names
os.environ.update(env)
os.execv(a[0], a)
"""

MANAGER_VARS = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
                "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")


class SdDaemon(Daemon):
    """A Daemon started the way a service manager would: with inherited
    sockets, manager variables, and stderr wherever the test says."""

    def start(self, wait=True, fds=(), names=None, env=None, stderr=None,
              timeout=10):
        self.write_ini()
        argv = [PY, "-I", "-c", LAUNCHER, str(len(fds))] + [str(f) for f in fds]
        argv += [names if names is not None else "-", "--"]
        argv += ["%s=%s" % kv for kv in (env or {}).items()] + ["--"]
        argv += [str(self.binary), "-c", str(self.ini)]
        e = {k: v for k, v in os.environ.items() if k not in MANAGER_VARS}
        self.err_offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=open(self.stdout_path, "ab"),
            stderr=stderr if stderr is not None else open(self.stderr_path, "ab"),
            cwd=str(self.dir), start_new_session=True, pass_fds=tuple(fds), env=e)
        self.stopped_rc = None
        if wait:
            self.wait_ready(timeout)
        return self


@pytest.fixture
def sd(make_daemon):
    """make() -> a new SdDaemon, torn down and checked like any daemon."""
    return lambda: make_daemon(SdDaemon)


def listener(path, kind=socket.SOCK_STREAM, listen=True):
    """A socket bound at path (mode 0666), as a .socket unit makes it."""
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(str(path))
    os.chmod(path, 0o666)
    if listen:
        s.listen(64)
    return s


def get(path, name):
    with pfp.connect(str(path), timeout=10) as c:
        return c.get(name)


# ------------------------------------------------------ socket activation

@pytest.mark.pf_timeout(60)
def test_inherited_socket_is_served_and_not_removed(sd):
    d = sd()
    d.put("f", b"from the inherited socket\n")
    s = listener(d.sock)
    try:
        d.start(fds=[s.fileno()], names="pipefiled")
        assert "passed by the service manager" in d.stderr()
        assert get(d.sock, "f").body == b"from the inherited socket\n"
        st = os.lstat(d.sock)
        assert d.stop() == 0
        # The socket is the manager's: still there, the same file, and still
        # taking connections (the manager would start the daemon again).
        st2 = os.lstat(d.sock)
        assert stat.S_ISSOCK(st2.st_mode) and (st2.st_ino, st2.st_dev) == (st.st_ino, st.st_dev)
        assert listening(d.sock)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(str(d.sock))
    finally:
        s.close()


@pytest.mark.pf_timeout(60)
def test_inherited_socket_chosen_by_name(sd):
    d = sd()
    d.put("f", b"named\n")
    other = listener(d.dir / "other.sock")
    s = listener(d.sock)
    try:
        d.start(fds=[other.fileno(), s.fileno()], names="compat:pipefiled")
        assert get(d.sock, "f").body == b"named\n"
        assert d.stop() == 0
        assert os.path.exists(d.sock) and os.path.exists(d.dir / "other.sock")
    finally:
        s.close()
        other.close()


@pytest.mark.pf_timeout(60)
def test_systemd_socket_activate(sd):
    tool = shutil.which("systemd-socket-activate")
    need(tool is not None, "needs systemd-socket-activate (Debian package systemd)")
    d = sd()
    d.put("f", b"activated\n")
    d.write_ini()
    e = {k: v for k, v in os.environ.items() if k not in MANAGER_VARS}
    # It binds, waits for the first client, then execs pipefiled (same pid).
    d.proc = subprocess.Popen(
        [tool, "-l", str(d.sock), "--fdname=pipefiled", str(d.binary), "-c", str(d.ini)],
        stdin=subprocess.DEVNULL, stdout=open(d.stdout_path, "ab"),
        stderr=open(d.stderr_path, "ab"), cwd=str(d.dir), start_new_session=True, env=e)
    wait_for(lambda: listening(d.sock), 10, "systemd-socket-activate to listen")
    os.chmod(d.sock, 0o666)
    assert get(d.sock, "f").body == b"activated\n"
    wait_for(lambda: "ready:" in d.stderr(), 10, "the ready line")
    assert "passed by the service manager" in d.stderr()
    assert d.stop() == 0
    assert stat.S_ISSOCK(os.lstat(d.sock).st_mode), "the socket was removed"


def _refuses(d, fds, names, why):
    d.start(wait=False, fds=fds, names=names)
    d.expect_exit = True
    assert d.wait_exit(15) == 1, d.stderr()
    err = d.stderr()
    assert "refusing to start" in err and why in err, err
    assert "ready:" not in err


@pytest.mark.pf_timeout(90)
def test_bad_inherited_socket_refuses_to_start(sd, workdir):
    # A regular file, a datagram socket, a stream socket nobody listens on.
    f = open(workdir / "plain", "w")
    dg = listener(workdir / "dg.sock", socket.SOCK_DGRAM, listen=False)
    quiet = listener(workdir / "quiet.sock", listen=False)
    good = listener(workdir / "good.sock")
    try:
        for fd, why in ((f.fileno(), "not a listening Unix stream socket (a regular file)"),
                        (dg.fileno(), "not a listening Unix stream socket (a Unix socket of another type)"),
                        (quiet.fileno(), "not a listening Unix stream socket (a Unix stream socket not listening)")):
            d = sd()
            _refuses(d, [fd], "pipefiled", why)
            # It binds nothing of its own behind the manager's back.
            assert not os.path.exists(d.sock)
        # Several passed, none called pipefiled; names that do not match the
        # count.
        _refuses(sd(), [good.fileno(), quiet.fileno()], "a:b", 'none called "pipefiled"')
        _refuses(sd(), [good.fileno()], "a:pipefiled", "LISTEN_FDNAMES names 2 sockets")
        assert listening(workdir / "good.sock")
    finally:
        for x in (f, dg, quiet, good):
            x.close()


@pytest.mark.pf_timeout(60)
def test_listen_fds_for_another_pid_binds_as_before(sd):
    d = sd()
    d.put("f", b"bound\n")
    d.start(env={"LISTEN_FDS": "1", "LISTEN_PID": "1"})
    assert "not this process" in d.stderr()
    assert get(d.sock, "f").body == b"bound\n"
    assert d.stop() == 0
    assert not os.path.exists(d.sock), "its own socket is removed at stop"


# ---------------------------------------------------------- notification

class Notify:
    """The service manager's end of $NOTIFY_SOCKET: a datagram socket that
    asks the kernel for each sender's pid."""

    def __init__(self, workdir, abstract):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract:
            name = "pipefiled-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.s.bind("\0" + name)
            self.env = "@" + name
        else:
            path = str(workdir / "notify.sock")
            self.s.bind(path)
            self.env = path

    def recv(self, timeout):
        """(pid, {key: value}) of the next message, or None."""
        self.s.settimeout(timeout)
        try:
            data, anc, _, _ = self.s.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", cdata[:12])[0]
        lines = data.decode().split("\n")
        assert lines[-1] == "", "a message ends in a newline: %r" % data
        return pid, dict(l.split("=", 1) for l in lines[:-1])

    def next_state(self, timeout, skip=("STATUS",)):
        """The next message that says more than the keys in skip."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            m = self.recv(max(left, 0.01)) if left > 0 else None
            if m is None:
                raise AssertionError("no notification within %.1f s" % timeout)
            if set(m[1]) - set(skip):
                return m

    def close(self):
        self.s.close()


@pytest.mark.pf_timeout(90)
@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_ready_reload_stop(sd, workdir, abstract):
    n = Notify(workdir, abstract)
    d = sd()
    d.put("f", b"x\n")
    try:
        d.start(wait=False, env={"NOTIFY_SOCKET": n.env})
        pid, m = n.next_state(15)
        # READY only once accepting: the socket listens and serves the
        # moment the manager hears it.
        assert m.get("READY") == "1", m
        assert listening(d.sock)
        assert get(d.sock, "f").body == b"x\n"
        assert pid == d.proc.pid, "sent by the main process (NotifyAccess=main)"
        assert re.match(r"2 workers, 0 requests; connections: \d+ open, 0 accepted, 0 refused; "
                        r"serving %s on %s$" % (re.escape(str(d.root)), re.escape(str(d.sock))),
                        m["STATUS"]), m
        get(d.sock, "f")
        # A line in the access log is a request counted.
        wait_for(lambda: len(d.log_lines()) == 2, 10, "two access-log lines")

        # A good reload: RELOADING=1 with the time it began, then READY=1.
        before = time.monotonic()
        d.kill(signal.SIGHUP)
        _, m = n.next_state(10)
        assert m.get("RELOADING") == "1" and "READY" not in m, m
        assert before - 1 <= int(m["MONOTONIC_USEC"]) / 1e6 <= time.monotonic() + 1
        _, m = n.next_state(10)
        assert m.get("READY") == "1", m
        assert m["STATUS"].startswith("2 workers, 2 requests; connections: "), m
        assert "2 accepted, 0 refused" in m["STATUS"], m
        wait_for(lambda: "reloaded" in d.stderr(), 10, "the reload")

        # A bad reload is refused, and still ends in READY=1: the daemon
        # serves with the running config.
        d.ini.write_text("[server\n")
        d.kill(signal.SIGHUP)
        _, m = n.next_state(10)
        assert m.get("RELOADING") == "1", m
        _, m = n.next_state(10)
        assert m.get("READY") == "1", m
        assert "reload failed" in d.stderr()
        assert get(d.sock, "f").body == b"x\n"

        d.kill(signal.SIGTERM)
        _, m = n.next_state(10)
        assert m.get("STOPPING") == "1", m
        # (A second SIGTERM would end it at once: wait, do not stop again.)
        assert d.wait_exit(20) == 0
        assert d.stop() == 0
    finally:
        n.close()


@pytest.mark.pf_timeout(60)
def test_watchdog_pings(sd, workdir):
    n = Notify(workdir, False)
    d = sd()
    try:
        # WATCHDOG_PID names the daemon ("{pid}": the launcher's, kept
        # across exec): pings every 100 ms.
        d.start(env={"NOTIFY_SOCKET": n.env, "WATCHDOG_USEC": "200000",
                     "WATCHDOG_PID": "{pid}"})
        assert n.next_state(10, skip=("STATUS", "WATCHDOG"))[1].get("READY") == "1"
        t0, pings = time.monotonic(), 0
        while time.monotonic() - t0 < 1.5:
            m = n.recv(0.5)
            if m is not None and m[1].get("WATCHDOG") == "1":
                pings += 1
        assert pings >= 5, "%d WATCHDOG=1 in 1.5 s (want one every 100 ms)" % pings
        assert d.stop() == 0
    finally:
        n.close()

    # A watchdog set for another process (a wrapper's) is not ours to feed.
    n = Notify(workdir / "d0", False)
    d = sd()
    try:
        d.start(env={"NOTIFY_SOCKET": n.env, "WATCHDOG_USEC": "200000",
                     "WATCHDOG_PID": "1"})
        assert n.next_state(10)[1].get("READY") == "1"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.8:
            m = n.recv(0.2)
            assert m is None or "WATCHDOG" not in m[1], m
        assert d.stop() == 0
    finally:
        n.close()


# --------------------------------------------------------------- journal

def _read_all(s, timeout=10):
    s.settimeout(timeout)
    got = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            return got
        got += chunk


@pytest.mark.pf_timeout(60)
def test_journal_stream_priority_marks(sd):
    d = sd()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.settimeout(10)
    st = os.fstat(theirs.fileno())
    try:
        d.start(wait=False, stderr=theirs.fileno(),
                env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
        theirs.close()
        # The ready line comes once the signal handlers are there.
        wait_for(lambda: b"ready:" in ours.recv(1 << 20, socket.MSG_PEEK), 10, "ready")
        # A warning (a restart key changed) and an error (a bad config).
        d.set("server", "workers", "3")
        d.write_ini()
        d.kill(signal.SIGHUP)
        wait_for(lambda: b"reloaded" in ours.recv(1 << 20, socket.MSG_PEEK), 10, "reload")
        d.ini.write_text("[server\n")
        d.kill(signal.SIGHUP)
        wait_for(lambda: b"reload failed" in ours.recv(1 << 20, socket.MSG_PEEK), 10, "reload")
        assert d.stop() == 0
        lines = _read_all(ours).decode().splitlines()
    finally:
        ours.close()
    assert lines and all(re.match(r"<[3467]>", l) for l in lines), lines
    assert not any("pipefiled: " in l for l in lines), lines
    assert any(l.startswith("<6>ready: serving ") for l in lines), lines
    assert any(l.startswith("<4>reload: workers changed") for l in lines), lines
    assert any(l.startswith("<3>reload failed, keeping the running config") for l in lines), lines
    assert lines[-1] == "<6>stopped"


@pytest.mark.pf_timeout(60)
def test_journal_stream_of_another_descriptor_changes_nothing(sd):
    # JOURNAL_STREAM inherited from a parent whose stderr was the journal,
    # while ours is a file: plain "pipefiled: LEVEL: " lines.
    d = sd()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        st = os.fstat(a.fileno())
        d.start(env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
        assert d.stop() == 0
    finally:
        a.close()
        b.close()
    lines = d.stderr().splitlines()
    assert any(l.startswith("pipefiled: info: ready: serving ") for l in lines), lines
    assert not any(l.startswith("<") for l in lines), lines

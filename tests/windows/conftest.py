"""Fixtures for the Windows suite: pipefiled.exe and pipefile.exe under wine.

The session copies the cached wine prefix (scripts/wine-prefix.sh makes it
once, ~15 s; the copy takes ~2 s) into a private dir, so runs never share
state, and starts a persistent `wineserver -p` for it: under wine a service
dies with its wineserver, and one server for the whole session saves each
wine process its start-up. At the end `wineserver -k` ends every process of
the prefix, and the session fails if one is left. A detached watchdog does
the same if pytest dies without its teardown. After failures the session
dir (/tmp/pf-win-*) keeps the failed tests' dirs and services.log, not the
prefix; PIPEFILED_KEEP_WINE=1 keeps everything.

The first wine process of the session starts the prefix's services
(services.exe, ...) and they inherit its stderr and WINEDEBUG. It is run
with the eventlog debug channel on and stderr to services.log: wine's
ReportEventW writes each Event Log record there (trace: information,
warn: warning, err: error), the only place a service's Event Log shows
under wine. Every other wine process runs with WINEDEBUG=-all.

`wine` (session) runs programs; `make_daemon` / `daemon` make a
pipefiled.exe per test in its own dir (root/, pipefiled.ini, access.log,
stderr.log) with its own pipe \\\\.\\pipe\\pftest-TOKEN-N; `d.start()`
runs it with --console and waits (bounded) for its "ready:" line and for the
pipe to answer; teardown stops it with Ctrl-C (SIGINT: wine turns it into a
CTRL_C_EVENT) and fails if it had to be killed, exited badly, or if any
process mentioning the test's token is left. Raw PFP/1 goes through
pipecat.exe (tests/windows/pipecat.c) wrapped as a socket, so pfp.py's Conn
(tests/system/pfp.py) speaks it unchanged.

Every test runs under a SIGALRM deadline (default 60 s; more with
@pytest.mark.pf_timeout(seconds)). Without wine the suite is skipped;
without the built binaries it fails (make windows builds them).
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.append(str(REPO / "tests" / "system"))  # pfp.py (after ours: its conftest is not ours)
import pfp  # noqa: E402

_build = Path(os.environ.get("PIPEFILED_WIN_BUILD", "build/win"))
BUILD = _build if _build.is_absolute() else (REPO / _build)
WINE = os.environ.get("WINE64", "/usr/lib/wine/wine64")
WINESERVER = shutil.which("wineserver") or "/usr/bin/wineserver"
PREFIX_SCRIPT = REPO / "scripts" / "wine-prefix.sh"
DEFAULT_TIMEOUT = 60
# What the session copies: the programs under test and the test tools.
PROGRAMS = ("pipefiled.exe", "pipefile.exe")
TOOLS = ("pipecat.exe", "holdfile.exe", "svcctl.exe")
EVENTLOG_DEBUG = "-all,trace+eventlog,warn+eventlog,err+eventlog"


# The session prefix's drive_c, once the session has one (Wine.__init__).
_DRIVE_C = None


def winpath(p):
    """The Windows name wine gives a Unix path: C:\\... beneath the session
    prefix's drive_c, else Z:\\... (drive Z: is /)."""
    p = str(p)
    if _DRIVE_C is not None and p.startswith(_DRIVE_C + "/"):
        return "C:\\" + p[len(_DRIVE_C) + 1:].replace("/", "\\")
    return "Z:" + p.replace("/", "\\")


def wait_for(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------- timeouts

class DeadlineExceeded(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "pf_timeout(seconds): per-test deadline")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


_session_failed = []


def pytest_runtest_logreport(report):
    if report.failed:
        _session_failed.append(report.nodeid)


def _failed(request):
    return any(getattr(request.node, "rep_" + w, None) is not None and
               getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))


@pytest.fixture(autouse=True)
def _deadline(request):
    m = request.node.get_closest_marker("pf_timeout")
    secs = int(m.args[0]) if m else DEFAULT_TIMEOUT

    def on_alarm(signum, frame):
        raise DeadlineExceeded("test exceeded its %d s deadline" % secs)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(secs)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------- processes

def _proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return b"?"


def _live_pids():
    """Our pids that are not zombies (wine's exited processes are reparented
    to init here and may linger as zombies for a moment)."""
    me = os.getpid()
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != me and _proc_state(int(d)) != b"Z":
            yield int(d)


def procs_of_prefix(prefix):
    """PIDs of live processes of a wine prefix, by WINEPREFIX in their
    environment (wine's processes show Windows command lines, and the
    prefix's services and wineserver name no test file)."""
    want = b"\0WINEPREFIX=" + os.fsencode(str(prefix)) + b"\0"
    out = []
    for pid in _live_pids():
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = b"\0" + f.read()
        except OSError:
            continue
        if want in env:
            out.append(pid)
    return out


def procs_mentioning(token):
    """PIDs of live processes whose command line mentions token (ignoring
    case: wine may show a Windows spelling of a path)."""
    t = token.lower().encode()
    out = []
    for pid in _live_pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().lower()
        except OSError:
            continue
        if t in cmd:
            out.append(pid)
    return out


def _kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ------------------------------------------------------------------ wine

class Wine:
    """One private wine prefix with its persistent wineserver; runs
    programs in it. `bin` holds this session's copies of the programs, and
    `tests` the tests' dirs, both on the prefix's drive C:. Not under /tmp:
    wine shows /tmp as a folder Everyone may delete entries in (it has no
    sticky bit), and pipefiled rightly refuses a config, log or program
    below such a folder; drive_c's chain is the session user's, 0755."""

    def __init__(self, dir):
        global _DRIVE_C
        self.dir = Path(dir)
        self.prefix = self.dir / "prefix"
        self.drive_c = self.prefix / "drive_c"
        _DRIVE_C = str(self.drive_c)
        self.bin = self.drive_c / "pipefiled-test-bin"
        self.tests = self.drive_c / "pipefiled-tests"
        self.services_log = self.dir / "services.log"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DISPLAY", "WAYLAND_DISPLAY", "WINEDEBUG",
                                 "WINEPREFIX", "WINESERVER", "WINEARCH")}
        self.env.update({"WINEPREFIX": str(self.prefix), "WINEDEBUG": "-all",
                         # Mono and Gecko are not in the prefix: never ask
                         "WINEDLLOVERRIDES": "mscoree,mshtml=",
                         "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
        self.procs = []  # Popen objects, killed at the end of their test

    def exe(self, name):
        p = self.bin / name
        if not p.exists():
            pytest.fail("%s is missing from %s: run `make windows` (the session "
                        "copies it from %s)" % (name, self.bin, BUILD), pytrace=False)
        return p

    def argv(self, args):
        return [WINE] + [a if isinstance(a, bytes) else str(a) for a in args]

    def run(self, *args, timeout=30, input=None, cwd=None, env=None):
        """Run a program under wine; returns CompletedProcess (bytes).
        Fails the test, with what it printed, when it overruns timeout."""
        e = dict(self.env)
        if env:
            e.update(env)
        try:
            return subprocess.run(self.argv(args), input=input,
                                  stdin=None if input is not None else subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout,
                                  cwd=str(cwd or self.dir), env=e)
        except subprocess.TimeoutExpired as ex:
            raise AssertionError("%r did not finish within %ss (killed); stdout %r stderr %r" %
                                 (args, timeout, (ex.stdout or b"")[-500:],
                                  (ex.stderr or b"")[-2000:])) from None

    def popen(self, *args, env=None, cwd=None, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(self.argv(args), env=e, cwd=str(cwd or self.dir),
                             start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def reap(self):
        """Kill what popen started and is still running (end of a test)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
        self.procs = []

    def probe(self, pipe, ms=0):
        """Whether an instance of the pipe waits for a client (pipecat
        --probe: WaitNamedPipe; opens no connection)."""
        r = self.run(self.exe("pipecat.exe"), "--probe", pipe, str(ms), timeout=30)
        return r.returncode == 0

    def services_log_text(self, start=0):
        try:
            with open(self.services_log, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def services_log_size(self):
        try:
            return self.services_log.stat().st_size
        except FileNotFoundError:
            return 0


# Runs detached from the session: if pytest dies without its teardown
# (killed, SIGPIPE), this still ends the prefix's processes and removes the
# session dir. Its environment names no WINEPREFIX, so it is not counted as
# one of the prefix's processes.
WATCHDOG = r"""
import os, shutil, subprocess, sys, time
ppid, server, prefix, sdir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
while True:
    try:
        os.kill(ppid, 0)
    except ProcessLookupError:
        break
    time.sleep(0.5)
env = dict(os.environ, WINEPREFIX=prefix)
subprocess.run([server, "-k"], env=env, timeout=60, stdin=subprocess.DEVNULL,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(2)
shutil.rmtree(sdir, ignore_errors=True)
"""


def _prefix():
    r = subprocess.run(["sh", str(PREFIX_SCRIPT)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=600)
    if r.returncode != 0:
        pytest.fail("scripts/wine-prefix.sh failed (%d):\n%s" %
                    (r.returncode, r.stderr.decode(errors="replace")), pytrace=False)
    return Path(r.stdout.decode().strip().splitlines()[-1])


@pytest.fixture(scope="session")
def wine():
    if not os.access(WINE, os.X_OK) or not os.access(WINESERVER, os.X_OK):
        pytest.skip("wine is not installed (%s, %s): the Windows suite runs under "
                    "Debian's wine and wine64" % (WINE, WINESERVER))
    cached = _prefix()
    w = Wine(tempfile.mkdtemp(prefix="pf-win-", dir="/tmp"))
    os.chmod(w.dir, 0o755)
    ok = False
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINE")}
    watchdog = subprocess.Popen(["/usr/bin/python3", "-c", WATCHDOG, str(os.getpid()),
                                 WINESERVER, str(w.prefix), str(w.dir)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        t0 = time.monotonic()
        subprocess.run(["cp", "-a", str(cached), str(w.prefix)], check=True, timeout=300)
        w.bin.mkdir(mode=0o755)
        w.tests.mkdir(mode=0o755)
        for name in PROGRAMS + TOOLS:
            src = BUILD / name if name in PROGRAMS else BUILD / "tests" / name
            if src.exists():
                shutil.copy2(src, w.bin / name)
        subprocess.run([WINESERVER, "-p"], env=w.env, check=True, timeout=30)
        # The first process starts the prefix's services, which inherit its
        # stderr (services.log) and WINEDEBUG. stdout must not be a pipe
        # (they would hold it open) and is not read.
        with open(w.services_log, "ab") as log:
            r = subprocess.run([WINE, "cmd", "/c", "exit"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=log, timeout=120,
                               env=dict(w.env, WINEDEBUG=EVENTLOG_DEBUG), cwd=str(w.dir))
        assert r.returncode == 0, "wine cmd /c exit: %d\n%s" % (
            r.returncode, w.services_log_text())
        w.setup_seconds = time.monotonic() - t0
        ok = True
        yield w
    finally:
        w.reap()
        subprocess.run([WINESERVER, "-k"], env=w.env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        left = []
        try:
            wait_for(lambda: not procs_of_prefix(w.prefix), 15,
                     "the prefix's processes to end after wineserver -k")
        except AssertionError:
            left = procs_of_prefix(w.prefix)
            _kill_all(left)
        watchdog.kill()
        watchdog.wait(timeout=10)
        if os.environ.get("PIPEFILED_KEEP_WINE"):
            print("\nkept the wine session dir: %s" % w.dir)
        elif _session_failed or left:
            # the failed tests' dirs and services.log, not the 700 MB prefix
            if w.tests.exists():
                shutil.move(str(w.tests), str(w.dir / "tests"))
            shutil.rmtree(w.prefix, ignore_errors=True)
            print("\nkept the session dir (failed tests' dirs, services.log): %s" % w.dir)
        else:
            shutil.rmtree(w.dir, ignore_errors=True)
        if ok:
            assert not left, "wine processes left after wineserver -k (killed): %r" % left


# ------------------------------------------------------- a pipe as socket

class PipeSock:
    """pipecat.exe connected to a pipe, with the interface pfp.Conn uses of
    a socket (recv, recv_into, sendall, settimeout, close). The connection
    is made by pipecat as it starts; what is sent meanwhile waits in its
    stdin. recv returns b"" when the server closed the pipe; a pipecat that
    could not connect raises ConnectionRefusedError with its message."""

    def __init__(self, wine, pipe, timeout=30.0, idle_ms=120000, sqos=None):
        self.pipe = pipe
        self.timeout = timeout
        opts = ["--sqos=" + sqos] if sqos else []
        # wine's own errors on its stderr too, shown only if pipecat fails;
        # a file, so that nothing it writes there can ever block it
        self.err = tempfile.TemporaryFile()
        self.p = wine.popen(wine.exe("pipecat.exe"), *opts, pipe, str(idle_ms),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=self.err, env={"WINEDEBUG": "-all,err+all"})
        self.buf = bytearray()
        self.eof = False
        self.closed = False
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()

    # What is read ahead of the test, like a socket's receive buffer: past
    # it pipecat's stdout fills, pipecat stops reading the pipe, and the
    # daemon's writes wait (a client that stops reading, really stops).
    READ_AHEAD = 1 << 20

    def _pump(self):
        fd = self.p.stdout.fileno()
        while True:
            with self.cv:
                while len(self.buf) >= self.READ_AHEAD and not self.closed:
                    self.cv.wait()
                if self.closed:
                    return
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            with self.cv:
                if chunk:
                    self.buf += chunk
                else:
                    self.eof = True
                self.cv.notify_all()
            if not chunk:
                return

    def settimeout(self, t):
        self.timeout = t

    def _wait(self):
        deadline = time.monotonic() + (self.timeout if self.timeout is not None else 1e9)
        with self.cv:
            while not self.buf and not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("no bytes from %s within %ss" % (self.pipe, self.timeout))
                self.cv.wait(left)
            if self.buf:
                return True
        # EOF: pipecat ended; say why unless the server closed the pipe
        try:
            rc = self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        if rc in (0, None):
            return False
        self.err.seek(0)
        err = self.err.read().decode(errors="replace").strip()
        if rc == 69:
            raise ConnectionRefusedError(err)
        if rc == 2:
            raise socket.timeout(err)
        raise OSError("pipecat exited %s: %s" % (rc, err))

    def recv(self, n):
        if not self._wait():
            return b""
        with self.cv:
            out = bytes(self.buf[:n])
            del self.buf[:len(out)]
            self.cv.notify_all()
            return out

    def recv_into(self, mv, n=0):
        data = self.recv(n or len(mv))
        mv[:len(data)] = data
        return len(data)

    def sendall(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def exit_code(self, timeout=15):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        with self.cv:
            self.closed = True
            self.cv.notify_all()
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.t.join(timeout=5)  # before its fd is closed (and reused)
        for f in (self.p.stdin, self.p.stdout, self.err):
            try:
                f.close()
            except OSError:
                pass


def pipe_conn(wine, pipe, timeout=30.0, sqos=None):
    """A pfp.Conn over pipecat: get, stat, request, read_response,
    closed_by_peer... as in the Linux suite. sqos: the impersonation level
    the client allows (pipecat --sqos)."""
    c = pfp.Conn("/nonexistent", timeout, connect=False)
    c.sock.close()
    c.sock = PipeSock(wine, pipe, timeout, sqos=sqos)
    c.path = pipe
    return c


# ---------------------------------------------------------------- daemon

class WinDaemon:
    """One pipefiled.exe with its own dir: root/, pipefiled.ini, access.log,
    stderr.log, and pipe. Config is a dict of sections; `ini_text`
    overrides it verbatim."""

    def __init__(self, wine, dir, pipe):
        self.wine = wine
        self.dir = Path(dir)
        self.dir.mkdir(mode=0o755)
        self.root = self.dir / "root"
        self.root.mkdir(mode=0o755)
        self.pipe = pipe
        self.ini = self.dir / "pipefiled.ini"
        self.access_log = self.dir / "access.log"
        self.stderr_path = self.dir / "stderr.log"
        self.stdout_path = self.dir / "stdout.log"
        self.config = {
            "server": {
                "socket": pipe,
                "root": winpath(self.root),
                "workers": "2",
                "request_timeout": "10s",
                "idle_timeout": "60s",
                "shutdown_timeout": "10s",
                # Off so that a test may put a log anywhere (e.g. under
                # /tmp, which wine shows as open to Everyone);
                # test_win_config.py checks the default (yes) both ways,
                # and test_win_trust.py that "no" never covers the config.
                "strict_modes": "no",
            },
            "log": {"access_log": winpath(self.access_log), "access_format": "text",
                    "level": "info"},
        }
        self.ini_text = None
        self.proc = None
        self.expect_exit = False
        self.stopped_rc = None
        self.err_offset = 0

    # --- config and files
    def set(self, section, key, value):
        self.config.setdefault(section, {})[key] = str(value)

    def unset(self, section, key):
        self.config.get(section, {}).pop(key, None)

    def render(self):
        lines = []
        for sec, kv in self.config.items():
            lines.append("[%s]" % sec)
            for k, v in kv.items():
                lines.append("%s = %s" % (k, v))
        return "\n".join(lines) + "\n"

    def write_ini(self):
        self.ini.write_text(self.ini_text if self.ini_text is not None else self.render())

    def put(self, name, data):
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        return p

    def mkdir(self, name):
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    # --- process
    def stderr(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def start(self, wait=True, args=(), timeout=30):
        self.write_ini()
        self.err_offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = self.wine.popen(
                self.wine.exe("pipefiled.exe"), "--console", "-c", winpath(self.ini), *args,
                stdout=out, stderr=err, cwd=self.dir)
        self.stopped_rc = None
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.stopped_rc = rc  # reported here, not again at teardown
                raise AssertionError("pipefiled.exe exited %d before ready:\n%s" %
                                     (rc, self.stderr()))
            if b"ready:" in self.stderr_path.read_bytes()[self.err_offset:] and \
                    self.wine.probe(self.pipe, 200):
                return
            if time.monotonic() > deadline:
                raise AssertionError("pipefiled.exe not ready within %ds:\n%s" %
                                     (timeout, self.stderr()))
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=20):
        """Ctrl-C (SIGINT, which wine delivers as CTRL_C_EVENT), a bounded
        wait, then kill. Returns the exit code; fails when it had to be
        killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            rc = self.wait_exit(timeout)
            if rc is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("pipefiled.exe did not exit within %ds of Ctrl-C; "
                                     "killed\n%s" % (timeout, self.stderr()[-3000:]))
        self.stopped_rc = self.proc.returncode
        return self.stopped_rc

    def teardown(self):
        problems = []
        if self.proc is None:
            return problems
        if self.stopped_rc is not None:
            return problems  # stopped, or its exit reported, already
        if self.proc.poll() is not None:
            if not self.expect_exit:
                problems.append("pipefiled.exe exited unexpectedly with %d" % self.proc.returncode)
            return problems
        try:
            rc = self.stop()
            if rc not in (0, None) and not self.expect_exit:
                problems.append("pipefiled.exe exited %d on Ctrl-C" % rc)
        except AssertionError as e:
            problems.append(str(e))
        return problems

    # --- clients
    def conn(self, timeout=30.0, sqos=None):
        return pipe_conn(self.wine, self.pipe, timeout, sqos)

    def get(self, path, **kw):
        with self.conn() as c:
            return c.get(path, **kw)

    def stat(self, path):
        with self.conn() as c:
            return c.stat(path)

    def cli(self, *args, timeout=60, pipe=None):
        """pipefile.exe -s PIPE ARGS...; CompletedProcess."""
        return self.wine.run(self.wine.exe("pipefile.exe"), "-s", pipe or self.pipe,
                             *args, timeout=timeout, cwd=self.dir)

    def cli_popen(self, *args, **kw):
        return self.wine.popen(self.wine.exe("pipefile.exe"), "-s", self.pipe, *args,
                               cwd=self.dir, **kw)

    # --- access log
    def log_lines(self):
        try:
            data = self.access_log.read_bytes()
        except FileNotFoundError:
            return []
        assert data == b"" or data.endswith(b"\n"), "access log ends mid-line: %r" % data[-200:]
        return [l.rstrip(b"\r") for l in data.split(b"\n")[:-1]] if data else []

    def log_records(self):
        return [parse_log_line(l) for l in self.log_lines()]


_TOKEN = re.compile(rb'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')
LOG_KEYS = ["time", "worker", "conn", "pid", "uid", "user", "gid", "proto", "op",
            "path", "resolved", "status", "bytes", "size", "duration_us"]


def parse_log_line(line):
    """A text access-log line -> dict of str (quoted values unquoted, not
    unescaped); fails on anything malformed."""
    pos = 0
    obj = {}
    keys = []
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        assert m, "unparsable access log at %d: %r" % (pos, line)
        k = m.group(1).decode()
        v = m.group(2).decode("utf-8", "replace")
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = v[1:-1]
        keys.append(k)
        obj[k] = v
        pos = m.end()
    assert keys == LOG_KEYS, "access log keys %r in %r" % (keys, line)
    return obj


@pytest.fixture
def workdir(wine, request):
    """A dir of the test's own under the session dir, named with a token
    that also names its daemons' pipes: any process still mentioning it at
    the end was left running by the test (killed, and the test fails)."""
    token = uuid.uuid4().hex[:10]
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:24]
    d = wine.tests / ("t-%s-%s" % (token, name))
    d.mkdir()
    yield d
    wine.reap()
    left = wait_and_list(token)
    _kill_all(left)
    if _failed(request) or left:
        print("\nkept test dir: %s (moved to %s at the end of the session)" %
              (d, wine.dir / "tests" / d.name))
    else:
        shutil.rmtree(d, ignore_errors=True)
    assert not left, "processes left running: %r" % left


def token_of(workdir):
    return workdir.name.split("-")[1]


def wait_and_list(token, timeout=5):
    """Processes mentioning token, after giving exiting ones a moment."""
    try:
        wait_for(lambda: not procs_mentioning(token), timeout, "processes to exit")
        return []
    except AssertionError:
        return procs_mentioning(token)


@pytest.fixture
def make_daemon(wine, workdir, request):
    """make(): a new WinDaemon in its own dir under workdir, not started;
    each is stopped and checked after the test."""
    made = []

    def make():
        n = len(made)
        d = WinDaemon(wine, workdir / ("d%d" % n),
                      "\\\\.\\pipe\\pftest-%s-%d" % (token_of(workdir), n))
        made.append(d)
        return d

    yield make
    problems = []
    for d in made:
        p = d.teardown()
        if p:
            problems += ["%s: %s" % (d.dir, x) for x in p]
    if _failed(request) or problems:
        for d in made:
            print("\n--- %s stderr (tail) ---\n%s" % (d.dir, d.stderr()[-3000:]))
    assert not problems, "\n".join(problems)


@pytest.fixture
def daemon(make_daemon):
    """A daemon with the default test config, not started yet."""
    return make_daemon()


@pytest.fixture
def server(daemon):
    """A started daemon with the default test config."""
    return daemon.start()

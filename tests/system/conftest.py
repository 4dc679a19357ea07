"""Fixtures for the system tests: a real pipefiled per test.

Each test gets its own temp dir (mode 0755, under /tmp, so other uids can
traverse it; pytest's tmp_path sits below a 0700 dir), and daemons made by the
`daemon` / `make_daemon` fixtures, each with its own ini, socket and served
root. A daemon is started with `d.start()` (waits, bounded, for its "ready"
line) and stopped on teardown with SIGTERM, a bounded wait, then SIGKILL;
teardown fails if it exited badly, crashed earlier, printed a sanitizer
report, or if any process mentioning the temp dir is left. The temp dir is
kept when the test fails and its path printed.

Every test runs under a SIGALRM deadline (default 120 s; more with
@pytest.mark.pf_timeout(seconds)). Root-only tests call need_root(): skipped
with the reason outside CI, failed in CI (CI=true).
"""

import grp
import hashlib
import json
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import pfp  # noqa: E402

_build = Path(os.environ.get("PIPEFILED_BUILD", "build"))
BUILD = _build if _build.is_absolute() else (REPO / _build)
DAEMON = BUILD / "pipefiled"
CLIENT = BUILD / "pipefile"
PY = "/usr/bin/python3"  # Debian's: readable by every uid (a pyenv one is not)
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Synthetic users: no passwd entry needed. Primary gid = uid.
UID_A, UID_B, UID_C = 61001, 61002, 61003
GID_SHARED = 61100
DEFAULT_TIMEOUT = 120


# ------------------------------------------------------------ policy helpers

def need(condition, reason):
    """Skip (outside CI) or fail (in CI) when a test cannot run here."""
    if condition:
        return
    if IN_CI:
        pytest.fail("cannot run in CI: " + reason, pytrace=False)
    pytest.skip(reason)


def need_root():
    need(os.geteuid() == 0, "needs root (switches to synthetic uids with setpriv)")
    need(os.path.exists(SETPRIV), "needs setpriv (util-linux)")
    need(os.path.exists(PY), "needs %s" % PY)


def same_file(a, b):
    """Whether two paths name the same file (by device and inode). Compares
    what /proc/PID/exe opens rather than the path it reads as, which differs
    across mount namespaces (in a chroot, say)."""
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def wait_for(pred, timeout, what, interval=0.02):
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


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        need(False, "RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
    if soft == resource.RLIM_INFINITY or soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


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


# ------------------------------------------------------------- binaries

@pytest.fixture(scope="session", autouse=True)
def _built():
    if not DAEMON.exists() or not CLIENT.exists():
        msg = "%s or %s is missing: run `make all`" % (DAEMON, CLIENT)
        if IN_CI:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    raise_nofile(4096)


@pytest.fixture(scope="session")
def tools():
    """A world-readable dir with copies of pfp.py and both binaries: other
    uids can run them (the checkout may sit in a dir they cannot enter), and
    the whole session tests one build even if build/ is rebuilt meanwhile."""
    d = Path(tempfile.mkdtemp(prefix="pipefiled-tools-", dir="/tmp"))
    os.chmod(d, 0o755)
    for src in (HERE / "pfp.py", DAEMON, CLIENT):
        shutil.copy2(src, d / src.name)
        os.chmod(d / src.name, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class User:
    def __init__(self, uid, gid, groups=(), name=None):
        self.uid, self.gid, self.groups = uid, gid, tuple(groups)
        self.name = name or str(uid)

    def setpriv(self):
        argv = [SETPRIV, "--reuid", str(self.uid), "--regid", str(self.gid)]
        if self.groups:
            argv += ["--groups", ",".join(str(g) for g in self.groups)]
        else:
            argv += ["--clear-groups"]
        return argv + ["--"]

    def __repr__(self):
        return "User(%d,%d,%r)" % (self.uid, self.gid, self.groups)


USER_A = User(UID_A, UID_A, (), "A")
USER_B = User(UID_B, UID_B, (GID_SHARED,), "B")
USER_C = User(UID_C, UID_C, (), "C")

CHILD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


class Runner:
    """Runs pfp.py and the CLI as other users; tracks spawned processes."""

    def __init__(self, tools, workdir):
        self.tools = tools
        self.workdir = workdir
        self.procs = []

    def pfp_argv(self, user, sock, *args):
        pre = user.setpriv() if user else []
        return pre + [PY, "-I", str(self.tools / "pfp.py"), str(sock)] + [
            a if isinstance(a, bytes) else str(a) for a in args]

    def pfp(self, user, sock, *args, timeout=60):
        """Run pfp.py; returns the list of JSON objects it printed."""
        argv = self.pfp_argv(user, sock, *args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, cwd=str(self.tools), env=CHILD_ENV)
        if p.returncode not in (0, 3):
            raise AssertionError("pfp.py %r exited %d: %s" % (args, p.returncode,
                                                              p.stderr.decode(errors="replace")))
        return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]

    def popen_pfp(self, user, sock, *args):
        argv = self.pfp_argv(user, sock, *args)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=str(self.tools), env=CHILD_ENV)
        self.procs.append(p)
        return p

    def cli(self, user, *args, timeout=120, stdout=None, env=None):
        """Run the pipefile CLI (the copy in tools, so any uid can run it)."""
        pre = user.setpriv() if user else []
        argv = pre + [str(self.tools / "pipefile")] + [
            a if isinstance(a, bytes) else str(a) for a in args]
        e = dict(CHILD_ENV)
        if env:
            e.update(env)
        return subprocess.run(argv, stdin=subprocess.DEVNULL,
                              stdout=stdout if stdout is not None else subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout,
                              cwd=str(self.workdir), env=e)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass


# ---------------------------------------------------------------- daemon

def listening(path):
    """Whether a socket bound at path is listening, from /proc/net/unix
    (no probe connection that the daemon would see and count)."""
    want = str(path)
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                # Num RefCount Protocol Flags Type St Inode [Path]
                if len(parts) >= 8 and parts[7] == want and int(parts[3], 16) & 0x10000:
                    return True
    except OSError:
        return True  # cannot tell here; the ready line has to do
    return False


def _procs_mentioning(text):
    """PIDs of processes whose command line mentions text (our temp dir)."""
    out = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if text.encode() in cmd:
            out.append(int(d))
    return out


class Daemon:
    """One pipefiled with its own dir: root/, pf.sock, pipefiled.ini,
    access.log, stderr.log. Config is a dict of sections; `ini_text`
    overrides it verbatim."""

    def __init__(self, dir, binary=DAEMON):
        self.dir = Path(dir)
        self.dir.mkdir(mode=0o755)
        os.chmod(self.dir, 0o755)
        self.root = self.dir / "root"
        self.root.mkdir(mode=0o755)
        os.chmod(self.root, 0o755)
        self.sock = self.dir / "pf.sock"
        self.ini = self.dir / "pipefiled.ini"
        self.access_log = self.dir / "access.log"
        self.stderr_path = self.dir / "stderr.log"
        self.stdout_path = self.dir / "stdout.log"
        self.wrapper_logs = self.dir / "wrapper-logs"
        self.env = None  # the daemon's environment when not the suite's
        self.config = {
            "server": {
                "socket": str(self.sock),
                "socket_mode": "0666",
                "root": str(self.root),
                "workers": "2",
                "request_timeout": "10s",
                "idle_timeout": "60s",
                "shutdown_timeout": "30s",
            },
            "identity": {"serve_root_clients": "yes"},
            "log": {"access_log": str(self.access_log), "access_format": "text",
                    "level": "info"},
        }
        self.ini_text = None
        self.proc = None
        self.binary = binary
        self.expect_exit = False
        self.stopped_rc = None

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
        os.chmod(self.ini, 0o644)

    def put(self, name, data, mode=0o644, uid=None, gid=None):
        """Create root/name (str or bytes, parents made 0755) with data."""
        p = os.path.join(os.fsencode(self.root), os.fsencode(name))
        os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        if uid is not None or gid is not None:
            os.chown(p, -1 if uid is None else uid, -1 if gid is None else gid)
        os.chmod(p, mode)
        return p

    def mkdir(self, name, mode=0o755, uid=None, gid=None):
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        if uid is not None or gid is not None:
            os.chown(p, -1 if uid is None else uid, -1 if gid is None else gid)
        os.chmod(p, mode)
        return p

    # --- process
    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, wait=True, user=None, args=(), timeout=10):
        self.write_ini()
        argv = self.wrapper() + [str(self.binary), "-c", str(self.ini)] + list(args)
        if user is not None:
            # As another uid with no capabilities at all: the no-privilege mode.
            argv = user.setpriv()[:-1] + ["--inh-caps=-all", "--bounding-set=-all",
                                          "--"] + argv
        self.argv = argv
        # stderr.log is appended to across restarts: readiness is judged on
        # what this run wrote
        self.err_offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL,
            stdout=open(self.stdout_path, "ab"), stderr=open(self.stderr_path, "ab"),
            cwd=str(self.dir), start_new_session=True, env=self.env)
        self.stopped_rc = None
        if wait:
            self.wait_ready(timeout)
        return self

    def wrapper(self):
        """PIPEFILED_WRAPPER (`make memcheck`): a command the daemon is started
        under, e.g. valgrind, its "{logdir}" replaced by a dir every uid may
        write to; teardown reads the reports it leaves there."""
        w = shlex.split(os.environ.get("PIPEFILED_WRAPPER", ""))
        if w:
            self.wrapper_logs.mkdir(exist_ok=True)
            os.chmod(self.wrapper_logs, 0o1777)
        return [a.replace("{logdir}", str(self.wrapper_logs)) for a in w]

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            if b"ready:" in self.stderr_path.read_bytes()[self.err_offset:] and \
                    os.path.exists(self.sock) and \
                    stat.S_ISSOCK(os.lstat(self.sock).st_mode) and listening(self.sock):
                return
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("pipefiled exited %d before ready:\n%s" % (rc, self.stderr()))
            if time.monotonic() > deadline:
                raise AssertionError("pipefiled not ready within %ds:\n%s" % (timeout, self.stderr()))
            time.sleep(0.01)

    def wait_exit(self, timeout=15):
        """Wait for the process to exit; returns its code or None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signal, wait (bounded), SIGKILL if needed. Returns the exit code;
        fails when the daemon had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            rc = self.wait_exit(timeout)
            if rc is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("pipefiled did not exit within %ds of %s; killed\n%s" %
                                     (timeout, signal.Signals(sig).name, self.stderr()))
        self.stopped_rc = self.proc.returncode
        return self.stopped_rc

    # --- client shortcuts (as the test process's own uid)
    def conn(self, timeout=10.0):
        return pfp.Conn(self.sock, timeout)

    def get(self, path, **kw):
        with self.conn() as c:
            return c.get(path, **kw)

    def stat(self, path):
        with self.conn() as c:
            return c.stat(path)

    def get_until_refused(self, path, tries):
        """GET path on a new connection each time, up to tries times, until
        the answer is not OK (requests that find room are served, and
        logged). Returns (response, seconds it took, OKs before it, whether
        the daemon then closed the connection); AssertionError if all were
        served."""
        for served in range(tries):
            with self.conn(timeout=30) as c:
                t0 = time.monotonic()
                r = c.get(path)
                took = time.monotonic() - t0
                if r.name != "OK":
                    return r, took, served, c.closed_by_peer()
        raise AssertionError("%d requests for %s served, none refused" % (tries, path))

    # --- access log
    def log_lines(self):
        # The daemon writes whole lines, a batch per write(); but a write
        # is copied into the file a page at a time, so a read racing one
        # may end mid-line. Such an end is gone within moments; one that
        # stays is the daemon's fault.
        deadline = time.monotonic() + 2
        while True:
            try:
                data = self.access_log.read_bytes()
            except FileNotFoundError:
                return []
            if data == b"" or data.endswith(b"\n") or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert data == b"" or data.endswith(b"\n"), "access log ends mid-line: %r" % data[-200:]
        return data.split(b"\n")[:-1] if data else []

    def teardown(self):
        """Stop if running; return a list of problems."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is not None and self.stopped_rc is None and not self.expect_exit:
            problems.append("pipefiled exited unexpectedly with %d" % self.proc.returncode)
        try:
            rc = self.stop()
            if rc not in (0, None) and not self.expect_exit:
                problems.append("pipefiled exited %d on SIGTERM" % rc)
        except AssertionError as e:
            problems.append(str(e))
        err = self.stderr()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer",
                       "ThreadSanitizer"):
            if marker in err:
                problems.append("sanitizer report on stderr (%s)" % marker)
        for log in sorted(self.wrapper_logs.glob("*")):
            text = log.read_text(errors="replace")
            if re.search(r"ERROR SUMMARY: [1-9]", text):
                problems.append("report in %s:\n%s" % (log, text[-6000:]))
        try:
            os.kill(self.proc.pid, 0)
            problems.append("pid %d still exists" % self.proc.pid)
        except ProcessLookupError:
            pass
        except PermissionError:
            problems.append("pid %d still exists" % self.proc.pid)
        return problems


@pytest.fixture
def workdir(request):
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:24]
    d = Path(tempfile.mkdtemp(prefix="pf-%s-" % name, dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    left = _procs_mentioning(str(d))
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    if failed or left:
        print("\nkept test dir: %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)
    assert not left, "processes left running: %r" % left


@pytest.fixture
def runner(tools, workdir):
    r = Runner(tools, workdir)
    yield r
    r.cleanup()


@pytest.fixture
def make_daemon(workdir, tools, request):
    """make(cls=Daemon): a new daemon of cls (a Daemon subclass may add
    ways to start it) in its own dir under workdir; each is torn down and
    checked after the test."""
    made = []

    def make(cls=Daemon):
        d = cls(workdir / ("d%d" % len(made)), binary=tools / "pipefiled")
        made.append(d)
        return d

    yield make
    problems = []
    for d in made:
        p = d.teardown()
        if p:
            problems += ["%s: %s" % (d.dir, x) for x in p]
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    if failed or problems:
        for d in made:
            tail = d.stderr()[-3000:]
            print("\n--- %s stderr (tail) ---\n%s" % (d.dir, tail))
    assert not problems, "\n".join(problems)


@pytest.fixture
def daemon(make_daemon):
    """A daemon with the default test config, not started yet."""
    return make_daemon()


@pytest.fixture
def server(daemon):
    """A started daemon with the default test config."""
    return daemon.start()


# ------------------------------------------------------------- big file

BIG_SIZE = (256 << 20) + 4097  # >= 256 MiB and not a multiple of anything nice


@pytest.fixture(scope="session")
def bigfile():
    """A >= 256 MiB file of random bytes, made once per session; tests hard-
    link it into their roots. Returns (path, size, sha256)."""
    d = Path(tempfile.mkdtemp(prefix="pipefiled-big-", dir="/tmp"))
    os.chmod(d, 0o755)
    p = d / "big.bin"
    h = hashlib.sha256()
    left = BIG_SIZE
    with open(p, "wb") as f:
        while left:
            chunk = os.urandom(min(4 << 20, left))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    os.chmod(p, 0o644)
    yield p, BIG_SIZE, h.hexdigest()
    shutil.rmtree(d, ignore_errors=True)


def link_big(bigfile, daemon, name="big.bin"):
    path, size, digest = bigfile
    dst = daemon.root / name
    os.link(path, dst)
    return name, size, digest


# ------------------------------------------------------------ access log

TEXT_KEYS = ["time", "worker", "conn", "pid", "uid", "user", "gid", "proto", "op",
             "path", "resolved", "status", "bytes", "size", "duration_us"]
# Statuses the log may show: the wire's, and one of its own for a request
# read in full but never answered.
LOG_STATUSES = set(pfp.CODE) | {"ABANDONED"}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_TOKEN = re.compile(rb'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def unescape_text_path(q):
    """The wire bytes of a quoted text-log path."""
    assert q.startswith(b'"') and q.endswith(b'"'), q
    s = q[1:-1]
    out = bytearray()
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == 0x5C:  # backslash
            nxt = s[i + 1:i + 2]
            if nxt in (b'"', b"\\"):
                out += nxt
                i += 2
            elif nxt == b"x":
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
            else:
                raise AssertionError("bad escape in %r" % q)
        else:
            assert 0x20 <= ch < 0x7F and ch != 0x22, "raw byte %#x in path %r" % (ch, q)
            out.append(ch)
            i += 1
    return bytes(out)


def parse_log_line(line, fmt):
    """One access-log line -> dict with the 15 keys; path and resolved as
    bytes (resolved None when the request never got that far), numbers as
    int. Fails on anything malformed."""
    if fmt == "json":
        obj = json.loads(line.decode("utf-8", "surrogateescape"))
        assert sorted(obj) == sorted(TEXT_KEYS), "json keys %r" % sorted(obj)
        for k in ("worker", "conn", "pid", "uid", "gid", "bytes", "size", "duration_us"):
            assert type(obj[k]) is int, "json %s not a number: %r" % (k, obj[k])
        for k in ("time", "user", "proto", "op", "path", "status"):
            assert isinstance(obj[k], str), "json %s not a string: %r" % (k, obj[k])
        obj["path"] = obj["path"].encode("utf-8", "surrogateescape")
        if obj["resolved"] is not None:
            assert isinstance(obj["resolved"], str), obj["resolved"]
            obj["resolved"] = obj["resolved"].encode("utf-8", "surrogateescape")
    else:
        for b in line:
            assert 0x20 <= b < 0x7F, "non-printable byte %#x in text line %r" % (b, line)
        pos = 0
        obj = {}
        keys = []
        while pos < len(line):
            m = _TOKEN.match(line, pos)
            assert m, "unparsable text log at %d: %r" % (pos, line)
            k = m.group(1).decode()
            keys.append(k)
            obj[k] = m.group(2)
            pos = m.end()
        assert keys == TEXT_KEYS, "text keys %r" % keys
        obj["path"] = unescape_text_path(obj["path"])
        obj["resolved"] = (None if obj["resolved"] == b"-"
                           else unescape_text_path(obj["resolved"]))
        for k in ("worker", "conn", "pid", "uid", "gid", "bytes", "size", "duration_us"):
            assert obj[k].isdigit(), "text %s=%r" % (k, obj[k])
            obj[k] = int(obj[k])
        for k in ("time", "user", "proto", "op", "status"):
            obj[k] = obj[k].decode()
    assert TIME_RE.match(obj["time"]), "time %r" % obj["time"]
    assert obj["proto"] in ("pfp1", "compat"), obj["proto"]
    assert obj["op"] in ("GET", "STAT", "-"), obj["op"]
    assert obj["status"] in LOG_STATUSES, obj["status"]
    return obj


def username(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def groupname(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def connect_error(path):
    """errno of connecting to path, or 0 when it connects."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(str(path))
        return 0
    except OSError as e:
        return e.errno
    finally:
        s.close()

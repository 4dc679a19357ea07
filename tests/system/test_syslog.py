"""`access_log = syslog` and `error_log = syslog` really reach syslog: one
datagram per request at daemon.info with the same fields as the file format,
the daemon's own messages at daemon.<their level> (a refused reload at err, a
restart-only key at warning, ready/stopping/stopped at info), and nothing of
it on stderr.

The host has no /dev/log and must not be changed, so each daemon runs in a
private mount namespace (unshare --mount --propagation private) whose /dev is
a small tmpfs holding null, zero, random and urandom bound from the real /dev
and a file `log` with the test's own datagram socket bound onto it. The
wrapper execs all the way down, so the pid the fixture signals is the
daemon's, and the namespace (with its mounts) ends when the daemon exits.
Root only.

A record too long for one datagram keeps every field: the padded path of
issue 5 ("\\x80" x 4080 then "/../secret") is cut and marked, and status,
bytes and the resolved path are all in the datagram.

The tests at the end stop reading that socket, as a hung syslog daemon
would, until its kernel queue is full: the daemon must still serve promptly
and handle SIGHUP and SIGTERM. With log_full = drop it counts (on stderr) the
access records it dropped; with log_full = block (the default) it holds them,
says so once, and delivers every one when the reader resumes."""

import datetime
import errno
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import pfp
from conftest import (UID_C, USER_C, Daemon, listening, need, need_root, same_file,
                      parse_log_line, username, wait_for)
from test_accesslog import cut_ok, resolved_field

LOG_DAEMON = 3
LOG_ERR, LOG_WARNING, LOG_INFO = 3, 4, 6
FOUR_K = bytes(range(256)) * 16
HOSTILE = b'evil\n"quote\\back\x01\x7f\xff name'
FORGED = (b'x\ntime=2020-01-01T00:00:00.000Z worker=1 conn=1 pid=1 uid=0 user=root '
          b'gid=0 proto=pfp1 op=GET path="y" status=OK bytes=1 size=1 duration_us=1')

# glibc's syslog(3) on a datagram socket: "<PRI>Mmm dd hh:mm:ss IDENT[PID]: MSG",
# no trailing newline.
SYSLOG_RE = re.compile(
    rb"<(\d{1,3})>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) pipefiled\[(\d+)\]: (.*)", re.S)


class Record:
    def __init__(self, data):
        m = SYSLOG_RE.fullmatch(data)
        assert m, "not a syslog datagram from pipefiled: %r" % data[:300]
        self.raw = data
        pri = int(m.group(1))
        self.facility, self.severity = pri >> 3, pri & 7
        self.pid = int(m.group(3))
        self.msg = m.group(4)
        assert b"\n" not in self.msg and b"\0" not in self.msg, data

    def is_access(self):
        return self.msg.startswith(b"time=") or self.msg.startswith(b'{"time"')

    def __repr__(self):
        return "<%d.%d [%d] %r>" % (self.facility, self.severity, self.pid, self.msg[:200])


class Sink:
    """The datagram socket that stands in for /dev/log. A thread keeps it
    drained: the kernel queues only net.unix.max_dgram_qlen datagrams (10
    here) before a sender waits."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)
        self.sock.setblocking(False)
        self.raw = []
        self.lock = threading.Lock()
        self.paused = threading.Event()
        self.done = threading.Event()
        self.gate = threading.Lock()  # held by the thread while it may read
        self.emptied = threading.Event()  # the thread found the queue empty
        self.thread = threading.Thread(target=self._run, name="syslog-sink", daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            with self.gate:
                if not self.paused.is_set():
                    r, _, _ = select.select([self.sock], [], [], 0.05)
                    if r:
                        self._drain()
                    else:
                        self.emptied.set()
                    continue
            time.sleep(0.01)

    def _drain(self):
        while True:
            try:
                data = self.sock.recv(1 << 17)
            except BlockingIOError:
                self.emptied.set()
                return
            except InterruptedError:
                return
            with self.lock:
                self.raw.append(data)

    def pause(self):
        """Stop reading, as a syslog daemon that hangs: once this returns,
        nothing is read until resume(), and the kernel queue fills up after
        max_dgram_qlen datagrams."""
        self.paused.set()
        with self.gate:  # a read in progress has ended
            pass

    def resume(self, timeout=10):
        """Read again; returns once the thread has found the queue empty."""
        self.emptied.clear()
        self.paused.clear()
        assert self.emptied.wait(timeout), "the sink did not drain within %ds" % timeout

    def full(self):
        """Whether the kernel queue has no room for another datagram, as
        poll() tells a sender connected to it; nothing is sent."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.connect(str(self.path))
            p = select.poll()
            p.register(s, select.POLLOUT)
            return not p.poll(0)
        finally:
            s.close()

    def count(self):
        with self.lock:
            return len(self.raw)

    def records(self, start=0):
        with self.lock:
            raw = list(self.raw[start:])
        return [Record(d) for d in raw]

    def wait(self, pred, timeout, what, start=0):
        """Poll until pred(records since start) is true; returns its value."""
        return wait_for(lambda: pred(self.records(start)), timeout, what)

    def finish(self):
        """Stop the thread and take what is still queued. Once every sender
        has exited, the list is then complete."""
        self.done.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self._drain()

    def close(self):
        if not self.done.is_set():
            self.finish()
        self.sock.close()


WRAPPER = """#!/bin/sh
# Runs pipefiled in a private mount namespace whose /dev is a small tmpfs:
# null, zero, random and urandom bound from the real /dev, and (when given)
# log = the test's datagram socket. Every step execs: the daemon keeps this pid.
set -eu
if [ "${{1-}}" != --in-namespace ]; then
  exec unshare --mount --propagation private -- "$0" --in-namespace "$@"
fi
shift
dev={newdev}
mount -t tmpfs -o mode=0755,size=64k,noexec pf-test-dev "$dev"
for n in null zero random urandom; do
  : > "$dev/$n"
  mount --bind "/dev/$n" "$dev/$n"
done
sink={sink}
if [ -n "$sink" ]; then
  : > "$dev/log"
  mount --bind "$sink" "$dev/log"
fi
mount --move "$dev" /dev
exec {daemon} "$@"
"""


class SyslogDaemon(Daemon):
    """A Daemon started through the namespace wrapper; readiness is read from
    the sink when the error log goes to syslog."""

    def __init__(self, dir, daemon_binary, sink):
        super().__init__(dir)
        self.sink = sink
        self.daemon_binary = daemon_binary
        newdev = self.dir / "newdev"
        newdev.mkdir(mode=0o755)
        wrapper = self.dir / "in-namespace"
        wrapper.write_text(WRAPPER.format(
            newdev=shlex.quote(str(newdev)),
            sink=shlex.quote(str(sink.path) if sink else ""),
            daemon=shlex.quote(str(daemon_binary))))
        os.chmod(wrapper, 0o755)
        self.binary = wrapper
        self.sink_mark = 0

    def start(self, wait=True, user=None, args=(), timeout=10):
        self.sink_mark = self.sink.count() if self.sink else 0
        return super().start(wait=wait, user=user, args=args, timeout=timeout)

    def wait_ready(self, timeout=10):
        if self.config["log"].get("error_log") != "syslog":
            super().wait_ready(timeout)
        else:
            def ready():
                rc = self.proc.poll()
                if rc is not None:
                    raise AssertionError("pipefiled exited %d before ready:\n%s" %
                                         (rc, self.stderr()))
                return any(r.msg.startswith(b"ready:") for r in
                           self.sink.records(self.sink_mark)) and listening(self.sock)
            wait_for(ready, timeout, "the ready line on syslog")
        # The wrapper exec'd its way down to the daemon: signals sent to this
        # pid reach pipefiled itself, which runs in its own mount namespace.
        assert same_file("/proc/%d/exe" % self.proc.pid, self.daemon_binary)
        assert os.readlink("/proc/%d/ns/mnt" % self.proc.pid) != os.readlink("/proc/self/ns/mnt")

    def mine(self, start=None):
        """Records this run sent (by pid), from the sink."""
        recs = self.sink.records(self.sink_mark if start is None else start)
        return [r for r in recs if r.pid == self.proc.pid]


def host_mounts():
    with open("/proc/self/mountinfo") as f:
        return sorted(l.split(" ", 4)[4] for l in f)


@pytest.fixture
def syslog_daemon(workdir, tools, request):
    """make(sink=True) -> a SyslogDaemon, not started, and its Sink (or None
    for a namespace with no /dev/log at all)."""
    need_root()
    need(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    need(shutil.which("mount") is not None, "needs mount (util-linux)")
    before = host_mounts()
    made, sinks = [], []

    def make(sink=True):
        s = None
        if sink:
            s = Sink(workdir / ("devlog%d.sock" % len(sinks)))
            sinks.append(s)
        d = SyslogDaemon(workdir / ("d%d" % len(made)), tools / "pipefiled", s)
        made.append(d)
        return d, s

    yield make
    problems = []
    for d in made:  # the sinks keep draining while the daemons stop
        problems += ["%s: %s" % (d.dir, p) for p in d.teardown()]
    for s in sinks:
        s.close()
    after = host_mounts()
    if after != before:
        problems.append("host mounts changed: %r" % sorted(set(after) ^ set(before)))
    if any(str(workdir) in l or "pf-test-dev" in l for l in after):
        problems.append("a test mount is visible on the host")
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    if failed or problems:
        for d in made:
            print("\n--- %s stderr (tail) ---\n%s" % (d.dir, d.stderr()[-3000:]))
            if d.sink:
                print("--- syslog ---\n" + "\n".join(repr(r) for r in d.sink.records()[-50:]))
    assert not problems, "\n".join(problems)


def requests_and_expectations(d, runner):
    """A mix of every kind of request; returns the fields each log record
    must carry, as sorted tuples (op, path, status, bytes, size, uid, gid, pid),
    plus the expected record count per connection group."""
    me = (os.geteuid(), os.getegid(), os.getpid())
    exp = []
    with d.conn() as c:
        assert c.get("four_k").body == FOUR_K
        exp.append(("GET", b"four_k", "OK", 4096, 4096) + me)
        assert c.stat("four_k").name == "OK"
        exp.append(("STAT", b"four_k", "OK", 0, 4096) + me)
        assert c.get("missing").name == "ENOENT"
        exp.append(("GET", b"missing", "ENOENT", 0, 0) + me)
        assert c.get("dir").name == "ENOTREG"
        exp.append(("GET", b"dir", "ENOTREG", 0, 0) + me)
        assert c.get("../x").name == "EXDEV"
        exp.append(("GET", b"../x", "EXDEV", 0, 0) + me)
        assert c.get("four_k", offset=5000).name == "ERANGE"
        exp.append(("GET", b"four_k", "ERANGE", 0, 4096) + me)
        assert c.get("four_k", offset=100, length=50).body == FOUR_K[100:150]
        exp.append(("GET", b"four_k", "OK", 50, 4096) + me)
    with d.conn() as c:  # pipelined
        c.send(pfp.get_request("four_k") * 4)
        for _ in range(4):
            assert c.read_response().body == FOUR_K
            exp.append(("GET", b"four_k", "OK", 4096, 4096) + me)
    with d.conn() as c:  # names that would forge lines in a naive log
        assert c.get(HOSTILE).body == b"hostile"
        exp.append(("GET", HOSTILE, "OK", 7, 7) + me)
        assert c.get(FORGED).name == "ENOENT"
        exp.append(("GET", FORGED, "ENOENT", 0, 0) + me)
    with d.conn() as c:  # too malformed to tell op or path
        c.send(b"X")
        assert c.read_response().name == "EPROTO"
        exp.append(("-", b"", "EPROTO", 0, 0) + me)
    with d.conn():  # no request: no record
        pass
    cli = subprocess.Popen([str(runner.tools / "pipefile"), "-s", str(d.sock), "get", "four_k"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = cli.communicate(timeout=30)
    assert (cli.returncode, out) == (0, FOUR_K), err
    exp.append(("GET", b"four_k", "OK", 4096, 4096, me[0], me[1], cli.pid))
    p = runner.popen_pfp(USER_C, d.sock, "get", "secret", "four_k")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert b'"EACCES"' in out and b'"OK"' in out, out
    exp.append(("GET", b"secret", "EACCES", 0, 0, UID_C, UID_C, p.pid))
    exp.append(("GET", b"four_k", "OK", 4096, 4096, UID_C, UID_C, p.pid))
    return exp


def put_files(d):
    d.put("four_k", FOUR_K)
    d.put(HOSTILE, b"hostile")
    d.put("secret", b"root only", mode=0o600)
    d.mkdir("dir")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_log_to_syslog(syslog_daemon, runner, fmt):
    d, sink = syslog_daemon()
    put_files(d)
    d.set("log", "access_log", "syslog")
    d.set("log", "access_format", fmt)
    d.set("log", "error_log", "stderr")
    d.start()
    t0 = datetime.datetime.now(datetime.timezone.utc)
    exp = requests_and_expectations(d, runner)
    t1 = datetime.datetime.now(datetime.timezone.utc)
    sink.wait(lambda rs: len(rs) >= len(exp), 15, "%d access records on syslog" % len(exp),
              start=d.sink_mark)
    assert d.stop() == 0
    sink.finish()  # the daemon has exited: every datagram it sent is in

    recs = d.mine()
    assert len(recs) == len(sink.records(d.sink_mark)), "datagrams from another pid"
    assert len(recs) == len(exp), "\n".join(map(repr, recs))
    got = []
    for r in recs:
        assert (r.facility, r.severity) == (LOG_DAEMON, LOG_INFO), r
        assert r.is_access(), r
        f = parse_log_line(r.msg, fmt)  # every key, in order for text
        got.append((f["op"], f["path"], f["status"], f["bytes"], f["size"],
                    f["uid"], f["gid"], f["pid"]))
        assert f["user"] == username(f["uid"]), f
        assert 1 <= f["worker"] <= 2, f
        assert 0 <= f["duration_us"] < 60_000_000, f
        when = datetime.datetime.strptime(f["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc)
        assert t0 - datetime.timedelta(seconds=2) <= when <= t1 + datetime.timedelta(seconds=2)
    assert sorted(got) == sorted(exp)
    # one connection's records share a conn id and come in request order
    conns = {}
    for r in recs:
        f = parse_log_line(r.msg, fmt)
        conns.setdefault(f["conn"], []).append((f["op"], f["path"], f["status"]))
    assert [("GET", b"four_k", "OK"), ("STAT", b"four_k", "OK"), ("GET", b"missing", "ENOENT"),
            ("GET", b"dir", "ENOTREG"), ("GET", b"../x", "EXDEV"), ("GET", b"four_k", "ERANGE"),
            ("GET", b"four_k", "OK")] in conns.values(), conns
    if fmt == "text":
        hostile = [r.msg for r in recs if b"evil" in r.msg]
        assert len(hostile) == 1
        assert b'path="evil\\x0a\\"quote\\\\back\\x01\\x7f\\xff name"' in hostile[0].lower()

    # stderr has the daemon's own lines and none of the access records
    err = d.stderr()
    assert "pipefiled: info: ready: serving %s" % d.root in err, err
    for line in err.splitlines():
        assert line.startswith("pipefiled: "), line
    assert "time=" not in err and '"time"' not in err and "four_k" not in err, err
    assert not d.access_log.exists()


def test_error_log_to_syslog(syslog_daemon):
    d, sink = syslog_daemon()
    d.put("f", b"x")
    d.set("log", "error_log", "syslog")  # the access log stays a file
    d.start()  # waits for the ready line on syslog
    pid = d.proc.pid
    ready = [r for r in d.mine() if r.msg.startswith(b"ready:")]
    assert len(ready) == 1
    assert (ready[0].facility, ready[0].severity) == (LOG_DAEMON, LOG_INFO), ready[0]
    assert re.fullmatch(rb"ready: serving %s on %s with 2 workers \(switching identity per "
                        rb"request; paths resolved with \w+\)" %
                        (re.escape(bytes(d.root)), re.escape(bytes(d.sock))), ready[0].msg), ready

    assert d.get("f").body == b"x"
    wait_for(lambda: len(d.log_lines()) == 1, 10, "the access line in the file")

    # a refused reload: an error, at err
    mark = sink.count()
    d.set("server", "bogus_key", "1")
    d.write_ini()
    d.kill(signal.SIGHUP)
    bad = sink.wait(lambda rs: [r for r in rs if b"reload failed" in r.msg], 10,
                    "the refused reload on syslog", start=mark)
    assert len(bad) == 1
    assert (bad[0].facility, bad[0].severity, bad[0].pid) == (LOG_DAEMON, LOG_ERR, pid), bad
    assert b"%s:" % bytes(d.ini) in bad[0].msg and b"bogus_key" in bad[0].msg, bad
    assert d.get("f").body == b"x"  # the old config still serves

    # a restart-only key: a warning, then the reload at info
    mark = sink.count()
    d.unset("server", "bogus_key")
    d.set("server", "workers", "3")
    d.write_ini()
    d.kill(signal.SIGHUP)
    recs = sink.wait(lambda rs: rs if any(r.msg.startswith(b"reloaded ") for r in rs) else None,
                     10, "the reload on syslog", start=mark)
    warn = [r for r in recs if b"workers" in r.msg]
    assert len(warn) == 1 and warn[0].msg.startswith(b"reload: "), recs
    assert (warn[0].facility, warn[0].severity) == (LOG_DAEMON, LOG_WARNING), warn
    done = [r for r in recs if r.msg.startswith(b"reloaded ")]
    assert done[0].msg == b"reloaded %s" % bytes(d.ini), done
    assert (done[0].facility, done[0].severity) == (LOG_DAEMON, LOG_INFO), done

    assert d.get("f").body == b"x"
    assert d.stop() == 0  # SIGTERM reached the daemon: it logs its stop
    sink.finish()
    recs = d.mine()
    assert len(recs) == len(sink.records(d.sink_mark)), "datagrams from another pid"
    msgs = [r.msg for r in recs]
    assert msgs[-1] == b"stopped", msgs
    assert msgs[-2].startswith(b"stopping: "), msgs
    for r in recs:
        assert r.facility == LOG_DAEMON, r
        assert not r.is_access(), r
        assert not r.msg.startswith(b"pipefiled:"), r  # no stderr prefix inside
    # nothing of it on stderr; the access log stayed in its file
    assert d.stderr() == "", d.stderr()
    assert len(d.log_lines()) == 3


def test_switch_to_syslog_and_back_on_reload(syslog_daemon):
    d, sink = syslog_daemon()
    d.put("f", b"x")
    d.set("log", "access_log", "stderr")
    d.set("log", "error_log", "stderr")
    d.start()
    assert d.get("f").name == "OK"
    wait_for(lambda: d.stderr().count("time=") == 1, 10, "the access line on stderr")

    d.set("log", "access_log", "syslog")
    d.set("log", "error_log", "syslog")
    d.write_ini()
    mark = sink.count()
    d.kill(signal.SIGHUP)
    sink.wait(lambda rs: any(r.msg == b"reloaded %s" % bytes(d.ini) for r in rs), 10,
              "the reload message on syslog", start=mark)
    err_at_switch = d.stderr()
    for i in range(5):
        assert d.get("f").name == "OK"
    assert d.get("nope").name == "ENOENT"
    recs = sink.wait(lambda rs: [r for r in rs if r.is_access()] if
                     len([r for r in rs if r.is_access()]) >= 6 else None, 10,
                     "6 access records on syslog", start=mark)
    for r in recs:
        assert (r.facility, r.severity, r.pid) == (LOG_DAEMON, LOG_INFO, d.proc.pid), r
        parse_log_line(r.msg, "text")
    # One connection each: a record is queued after its response went out,
    # so two connections' records may come in either order.
    assert sorted(parse_log_line(r.msg, "text")["status"] for r in recs) == \
        ["ENOENT"] + ["OK"] * 5

    # and back to stderr
    d.set("log", "access_log", "stderr")
    d.set("log", "error_log", "stderr")
    d.write_ini()
    d.kill(signal.SIGHUP)
    wait_for(lambda: "pipefiled: info: reloaded %s" % d.ini in d.stderr(), 10,
             "the reload message on stderr")
    assert d.get("f").name == "OK"
    wait_for(lambda: d.stderr().count("time=") == 2, 10, "the access line back on stderr")
    assert d.stop() == 0
    sink.finish()

    # while syslog was on, stderr got nothing: no access lines, no messages
    assert d.stderr()[:len(err_at_switch)] == err_at_switch
    between = d.stderr()[len(err_at_switch):]
    assert between.startswith("pipefiled: info: reloaded "), between
    assert d.stderr().count("time=") == 2
    assert "nope" not in d.stderr()
    assert "stopped" in d.stderr().splitlines()[-1]
    # and syslog got nothing after the switch back
    msgs = [r.msg for r in d.mine()]
    assert len([m for m in msgs if m.startswith(b"time=")]) == 6, msgs
    assert b"stopped" not in msgs and not any(m.startswith(b"stopping") for m in msgs), msgs
    assert len(msgs) == len(sink.records(d.sink_mark))


@pytest.mark.parametrize("log_full", ["drop", "block"])
def test_no_syslog_socket_does_not_hurt(syslog_daemon, log_full):
    """No /dev/log at all (syslogd down): requests are served (the queue
    holds their records), the daemon stops cleanly; the records are lost and
    every one is counted: at once with drop, at the bounded drain of the
    stop with block, which says it is blocked."""
    d, _ = syslog_daemon(sink=False)
    d.put("f", b"x")
    d.set("log", "access_log", "syslog")
    d.set("log", "error_log", "stderr")
    d.set("log", "log_full", log_full)
    d.start()
    t0 = time.monotonic()
    for _ in range(50):
        assert d.get("f").body == b"x"
    assert time.monotonic() - t0 < 20
    blocked = "access log: blocked: /dev/log: %s;" % os.strerror(errno.ENOENT)
    if log_full == "block":
        wait_for(lambda: blocked in d.stderr(), 10, "the blocked message")
    assert d.stop() == 0
    err = d.stderr()
    assert "time=" not in err
    assert (blocked in err) == (log_full == "block"), err
    reports = drop_reports(err)
    assert all(why == "/dev/log: " + os.strerror(errno.ENOENT) for _, why in reports), reports
    assert sum(n for n, _ in reports) == 50, reports


# ------------------------------------------------------ a stalled syslog daemon
#
# A syslog daemon that stops reading: the sink is paused, the kernel queue of
# net.unix.max_dgram_qlen datagrams fills, and every later send finds no room.
# The daemon must not wait on it -- not to serve, not on SIGHUP, not on
# SIGTERM -- and must count what the access log dropped.

PROMPT_S = 2.0  # a new connection's request, answer included
STALL_REQUESTS = 300
EAGAIN_TEXT = os.strerror(errno.EAGAIN)  # glibc: "Resource temporarily unavailable"
DROP_RE = re.compile(r"^pipefiled: error: access log: (\d+) records dropped \((.*)\)$", re.M)


def max_dgram_qlen():
    with open("/proc/sys/net/unix/max_dgram_qlen") as f:
        return int(f.read())


def prompt_get(d, path, limit=PROMPT_S):
    """GET path on a new connection; fails unless the answer is in within
    limit seconds. Returns (response, seconds taken)."""
    t0 = time.monotonic()
    try:
        with d.conn(timeout=limit + 3) as c:
            r = c.get(path)
    except (OSError, pfp.ProtocolError) as e:  # socket.timeout is an OSError
        raise AssertionError("GET %r on a new connection failed after %.2fs: %r" %
                             (path, time.monotonic() - t0, e))
    took = time.monotonic() - t0
    assert took < limit, "GET %r on a new connection took %.2fs" % (path, took)
    return r, took


def drop_reports(err):
    """[(count, why)] of the access log's drop reports in stderr text."""
    return [(int(n), why) for n, why in DROP_RE.findall(err)]


def access_paths(recs):
    return [parse_log_line(r.msg, "text")["path"] for r in recs if r.is_access()]


def fill_queue(d, sink, n=50):
    """n requests (more records than the paused sink's queue holds); returns
    once the daemon has filled that queue."""
    assert sink.paused.is_set()
    assert n > max_dgram_qlen() + 1
    for _ in range(n):
        assert prompt_get(d, "f")[0].name == "OK"
    wait_for(sink.full, 10, "the daemon's records to fill the stopped reader's queue")


def start_stalled(d, sink, n=50):
    """Start d, stop the reader on its /dev/log and fill the queue with n
    requests' records; returns the datagram count before the stall."""
    d.start()
    sink.pause()
    mark = sink.count()
    fill_queue(d, sink, n)
    return mark


@pytest.mark.pf_timeout(180)
def test_stalled_syslog_does_not_stall_serving(syslog_daemon):
    """Both logs to syslog, the reader stopped and its queue full: hundreds
    of new connections, one after another and four at a time, are each
    answered promptly, also across reloads whose messages the accept loop
    sends into the full queue. The requests are spread over about two
    seconds, far past the access log's one 100 ms wait for room. With
    log_full = drop the records are dropped, not held back."""
    d, sink = syslog_daemon()
    d.put("f", b"x")
    d.set("log", "access_log", "syslog")
    d.set("log", "error_log", "syslog")
    d.set("log", "log_full", "drop")
    mark = start_stalled(d, sink)
    pid = d.proc.pid

    times = []
    t0 = time.monotonic()
    for i in range(STALL_REQUESTS):
        if i % 100 == 50:
            d.kill(signal.SIGHUP)  # a valid reload: "reloaded ..." at info
        r, took = prompt_get(d, "f")
        assert r.body == b"x"
        times.append(took)
        time.sleep(0.005)
    assert time.monotonic() - t0 > 1.5

    errors = []

    def client():
        try:
            for _ in range(50):
                r, took = prompt_get(d, "f")
                assert r.body == b"x"
                times.append(took)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a client thread hangs"
    assert not errors, errors
    assert len(times) == STALL_REQUESTS + 4 * 50
    total = len(times) + 50  # with fill_queue's
    print("stalled syslog: %d requests, slowest %.3fs" % (total, max(times)))
    assert d.running()
    assert sink.full()

    # the reader resumes: a new request's record gets through again
    sink.resume()
    assert prompt_get(d, "after")[0].name == "ENOENT"
    sink.wait(lambda rs: b"after" in access_paths(r for r in rs if r.pid == pid), 10,
              "the record of a request after the reader resumed", start=mark)
    assert d.stop() == 0
    sink.finish()
    # dropped, not held back: a daemon that waited would deliver them all
    got = access_paths(d.mine(mark))
    assert got.count(b"after") == 1
    assert got.count(b"f") < total, "every record arrived late: the daemon waited"
    assert d.stderr() == "", d.stderr()


@pytest.mark.pf_timeout(120)
def test_stalled_syslog_refused_reload_still_handled(syslog_daemon):
    """SIGHUP with an invalid config while the reader is stopped: the refusal
    cannot be sent, yet the reload is handled -- the daemon keeps serving the
    old config, and a later valid SIGHUP (handled after it) takes effect.
    Once the reader resumes, the error log reaches syslog again."""
    d, sink = syslog_daemon()
    d.put("f", b"old")
    root2 = d.dir / "root2"
    root2.mkdir(mode=0o755)
    os.chmod(root2, 0o755)
    (root2 / "f").write_bytes(b"new")
    os.chmod(root2 / "f", 0o644)
    d.set("log", "access_log", "syslog")
    d.set("log", "error_log", "syslog")
    # Dropped, not held: with block the held records would be sent when the
    # reader resumes and could crowd the error log's messages (sent without
    # waiting) out of the 10-datagram queue; this test is about the reload.
    d.set("log", "log_full", "drop")
    mark = start_stalled(d, sink)
    pid = d.proc.pid

    # refused: it would also move the root, so the old root must keep serving
    d.set("server", "root", str(root2))
    d.set("server", "bogus_key", "1")
    d.write_ini()
    d.kill(signal.SIGHUP)
    n, until = 0, time.monotonic() + 1.0
    while n < 20 or time.monotonic() < until:
        assert prompt_get(d, "f")[0].body == b"old"
        n += 1
        time.sleep(0.01)

    # the same without the bad key: a reload the main loop handles after the
    # refused one, so its taking effect shows the refusal did not wedge it
    d.unset("server", "bogus_key")
    d.write_ini()
    d.kill(signal.SIGHUP)
    wait_for(lambda: prompt_get(d, "f")[0].body == b"new", 10,
             "the valid reload to take effect with the reader stopped")
    assert d.running()

    # the first refusal went into a full queue without waiting: it may or may
    # not have arrived. A refusal after the reader resumed must arrive.
    sink.resume()
    mark2 = sink.count()
    d.set("server", "bogus_key", "2")
    d.write_ini()
    d.kill(signal.SIGHUP)
    bad = sink.wait(lambda rs: [r for r in rs if r.pid == pid and b"reload failed" in r.msg],
                    10, "a refused reload on syslog after the reader resumed", start=mark2)
    assert len(bad) == 1, bad
    assert (bad[0].facility, bad[0].severity) == (LOG_DAEMON, LOG_ERR), bad
    assert b"bogus_key" in bad[0].msg, bad
    assert prompt_get(d, "f")[0].body == b"new"

    d.unset("server", "bogus_key")
    d.write_ini()
    assert d.stop() == 0
    sink.finish()
    refusals = [r for r in d.mine(mark) if b"reload failed" in r.msg]
    assert 1 <= len(refusals) <= 2, refusals
    assert d.stderr() == "", d.stderr()


@pytest.mark.parametrize("log_full", ["drop", "block"])
@pytest.mark.parametrize("error_log", ["syslog", "stderr"])
@pytest.mark.pf_timeout(120)
def test_stalled_syslog_sigterm_exits(syslog_daemon, error_log, log_full):
    """SIGTERM with the reader stopped and records still coming: exit 0,
    bounded well below a hang, whether the writer drops (drop) or holds and
    retries (block: the retries end within the 5 s drain). With the error
    log on stderr, the exit is the clean one (the writer drained, not
    abandoned) and every record is either delivered or counted in a drop
    report."""
    shutdown_s = 3
    d, sink = syslog_daemon()
    d.put("f", b"x")
    d.set("server", "shutdown_timeout", "%ds" % shutdown_s)
    d.set("log", "access_log", "syslog")
    d.set("log", "error_log", error_log)
    d.set("log", "log_full", log_full)
    mark = start_stalled(d, sink, 200)
    with d.conn() as c:  # a last burst, its records likely still queued
        c.send(pfp.get_request("f") * 100)
        for _ in range(100):
            assert c.read_response().body == b"x"
    requests = 300

    t0 = time.monotonic()
    rc = d.stop(timeout=shutdown_s + 8)  # SIGTERM; kills and fails on a hang
    took = time.monotonic() - t0
    print("stalled syslog: exited %d %.3fs after SIGTERM" % (rc, took))
    assert rc == 0
    assert took < shutdown_s + 8

    sink.resume()
    sink.finish()
    # nothing was read until the daemon had exited: only what the kernel queued
    delivered = access_paths(d.mine(mark))
    assert len(delivered) <= max_dgram_qlen() + 1, len(delivered)
    err = d.stderr()
    if error_log == "syslog":
        assert err == "", err
        return
    lines = err.splitlines()
    assert lines[-1] == "pipefiled: info: stopped", err
    assert any(l.startswith("pipefiled: info: stopping: ") for l in lines), err
    assert "does not take writes" not in err, err
    assert ("access log: blocked: /dev/log" in err) == (log_full == "block"), err
    reports = drop_reports(err)
    assert reports, err
    assert all(why in ("/dev/log: " + EAGAIN_TEXT, "queue full") for _, why in reports), reports
    # the forced report at stop leaves no drop uncounted
    assert sum(n for n, _ in reports) + len(delivered) == requests, (reports, len(delivered))


@pytest.mark.pf_timeout(120)
def test_stalled_syslog_drops_reported_on_stderr(syslog_daemon):
    """access_log = syslog, error_log = stderr, the reader stopped: the drops
    are reported on stderr at once, with their count and why; after the
    reader resumes, each new request's record arrives again; and in the end
    every record was either delivered or counted. (log_full = drop)"""
    d, sink = syslog_daemon()
    d.put("f", b"x")
    d.set("log", "access_log", "syslog")
    d.set("log", "error_log", "stderr")
    d.set("log", "log_full", "drop")
    mark = start_stalled(d, sink, STALL_REQUESTS)
    pid = d.proc.pid

    # the first report is not held back: it comes while the reader is stopped
    reports = wait_for(lambda: drop_reports(d.stderr()), 10, "a drop report on stderr")
    n, why = reports[0]
    assert why == "/dev/log: " + EAGAIN_TEXT, reports
    assert 1 <= n <= STALL_REQUESTS, reports
    assert d.running()
    assert sink.full()

    sink.resume()
    after = []
    for i in range(10):
        name = b"after-%d" % i
        assert prompt_get(d, name)[0].name == "ENOENT"
        after.append(name)
        sink.wait(lambda rs: name in access_paths(r for r in rs if r.pid == pid), 10,
                  "the record of %r after the reader resumed" % name, start=mark)
    assert d.stop() == 0
    sink.finish()

    paths = access_paths(d.mine(mark))
    assert [p for p in paths if p != b"f"] == after
    delivered = paths.count(b"f")
    err = d.stderr()
    reports = drop_reports(err)
    assert all(why in ("/dev/log: " + EAGAIN_TEXT, "queue full") for _, why in reports), reports
    dropped = sum(n for n, _ in reports)
    print("stalled syslog: %d delivered, %d dropped in %d reports" %
          (delivered, dropped, len(reports)))
    assert dropped + delivered == STALL_REQUESTS, (reports, delivered)
    assert "time=" not in err, err
    for line in err.splitlines():
        assert line.startswith("pipefiled: "), line
    assert err.splitlines()[-1] == "pipefiled: info: stopped", err


@pytest.mark.pf_timeout(120)
def test_stalled_syslog_block_delivers_every_record(syslog_daemon):
    """log_full = block (the default), access log to syslog, the reader
    stopped: requests are served while the queue has room, nothing is
    dropped, stderr says once that the log is blocked; when the reader
    resumes, every record arrives, and stderr says it resumed."""
    d, sink = syslog_daemon()
    d.put("f", b"x")
    d.set("log", "access_log", "syslog")
    d.set("log", "error_log", "stderr")
    mark = start_stalled(d, sink, 200)
    pid = d.proc.pid
    blocked = "pipefiled: error: access log: blocked: /dev/log: %s;" % EAGAIN_TEXT
    wait_for(lambda: blocked in d.stderr(), 10, "the blocked message on stderr")
    time.sleep(1.5)  # retries meanwhile drop nothing
    assert "dropped" not in d.stderr(), d.stderr()
    assert sink.full()

    sink.resume()
    for i in range(10):
        assert prompt_get(d, b"after-%d" % i)[0].name == "ENOENT"
    sink.wait(lambda rs: b"after-9" in access_paths(r for r in rs if r.pid == pid), 15,
              "every record, the last one too", start=mark)
    wait_for(lambda: "access log: resumed: /dev/log takes writes again" in d.stderr(), 10,
             "the resumed message")
    assert d.stop() == 0
    sink.finish()
    paths = access_paths(d.mine(mark))
    assert sorted(paths) == [b"after-%d" % i for i in range(10)] + [b"f"] * 200, paths
    err = d.stderr()
    assert err.count("access log: blocked:") == 1, err
    assert err.count("access log: resumed:") == 1, err
    assert "dropped" not in err, err


PAD = b"\x80" * 4080  # issue 5: slow to escape, and long enough to push a
PADDED = PAD + b"/../secret"  # naive 8 KiB cut past the path's end


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_padded_path_through_syslog_keeps_every_field(syslog_daemon, fmt):
    """The padded path fills more than a datagram once escaped (16 KiB in
    text, 24 KiB in JSON): the record is still one datagram of at most
    8 KiB, every field is in it, the path is cut in the middle with a marker
    saying how much is missing, its tail "/../secret" is kept, and status
    and bytes say what was served."""
    d, sink = syslog_daemon()
    d.put("secret", b"the secret")
    d.set("log", "access_log", "syslog")
    d.set("log", "access_format", fmt)
    d.set("log", "error_log", "stderr")
    d.start()
    pid = d.proc.pid
    assert d.get(PADDED).body == b"the secret"
    recs = sink.wait(lambda rs: [r for r in rs if r.pid == pid and r.is_access()], 10,
                     "the access record", start=d.sink_mark)
    assert len(recs) == 1, recs
    assert len(recs[0].raw) <= 8192, len(recs[0].raw)
    f = parse_log_line(recs[0].msg, fmt)  # every key, in order for text
    assert (f["op"], f["status"], f["bytes"], f["size"]) == ("GET", "OK", 10, 10), f
    assert f["uid"] == os.geteuid() and f["pid"] == os.getpid(), f
    assert cut_ok(f["path"], PADDED), f["path"][-100:]
    # a third of the room for the head, the rest for the tail
    assert f["path"] != PADDED and f["path"].startswith(b"\x80" * 300), f["path"][-100:]
    assert f["path"].endswith(b"\x80/../secret"), f["path"][-100:]
    assert recs[0].msg.count(b"[") == 1, recs[0].msg  # the marker's, raw
    assert re.search(rb"\.\.\.\[truncated \d+ bytes\]\.\.\.", recs[0].msg), recs[0].msg[-300:]
    # What was served: "secret", once the worker hands the resolved path to
    # the log (conn.c, issue 5); none ("-"/null) before that.
    assert resolved_field(recs[0].msg, fmt) == b"secret", recs[0].msg[-300:]
    assert d.stop() == 0


# Latin-1 names ("\xe9t\xe9", été), as legacy systems write them: invalid
# UTF-8, so 4 bytes each in text, 6 in JSON; 15 x 185 bytes.
DEEP_DIRS = [b"d%02d-" % i + b"\xe9t\xe9" * 60 for i in range(15)]
DEEP = b"/".join(DEEP_DIRS) + b"/quarterly-report.pdf"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_deep_path_through_syslog_keeps_the_file_name(syslog_daemon, fmt):
    """A real 2.8 KiB path of Latin-1 directory names (8 KiB once escaped
    in text, 12 KiB in JSON): through one 8 KiB datagram both the wire path
    and the resolved path keep their head (the first directory) and their
    tail (the file name), cut in the middle; before, both lost their end and
    with it the name of the file served."""
    d, sink = syslog_daemon()
    d.put(DEEP, b"the report")
    d.set("log", "access_log", "syslog")
    d.set("log", "access_format", fmt)
    d.set("log", "error_log", "stderr")
    d.start()
    pid = d.proc.pid
    wire = b"/" + DEEP
    assert d.get(wire).body == b"the report"
    recs = sink.wait(lambda rs: [r for r in rs if r.pid == pid and r.is_access()], 10,
                     "the access record", start=d.sink_mark)
    assert len(recs) == 1, recs
    assert len(recs[0].raw) <= 8192, len(recs[0].raw)
    f = parse_log_line(recs[0].msg, fmt)
    assert (f["status"], f["bytes"]) == ("OK", 10), f
    res = resolved_field(recs[0].msg, fmt)
    assert recs[0].msg.count(b"[") == 2, recs[0].msg  # both cut, each marked
    assert cut_ok(f["path"], wire) and f["path"] != wire, f["path"]
    assert cut_ok(res, DEEP) and res != DEEP, res
    for got in (f["path"], res):
        assert got.endswith(b"/quarterly-report.pdf"), got[-100:]
        assert got.lstrip(b"/").startswith(DEEP_DIRS[0][:20]), got[:100]
    assert len(res) > len(f["path"]), "the resolved path comes first"
    assert d.stop() == 0

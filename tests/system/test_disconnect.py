"""A client that dies mid-transfer leaves the daemon healthy (no SIGPIPE
death, no stuck worker) and the log line says how much was sent; requests it
had pipelined behind are each logged as abandoned (one line per request the
daemon read); the CLI killed mid-transfer leaves no output file behind."""

import fcntl
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import threading

import pytest

import pfp
from conftest import link_big, parse_log_line, unescape_text_path, wait_for

# The access-log status of a request read but never answered. accesslog.c
# names ACCESS_ABANDONED; until its formatter knows the name it prints the
# fallback of pfp_status_name().
ABANDONED = ("ABANDONED",)
_FIELD = re.compile(rb'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def log_records(daemon):
    """The access log (text format) as dicts: conn, bytes, size, uid and
    worker as int, path as wire bytes, the rest as str. Unlike
    conftest.parse_log_line it takes any status name (ABANDONED is not a
    wire status) and fields added later."""
    return parse_records(daemon.log_lines())


def parse_records(lines):
    """log_records() of text-format lines (bytes, without newlines)."""
    out = []
    for line in lines:
        rec = {m.group(1).decode(): m.group(2) for m in _FIELD.finditer(line)}
        for k in ("conn", "bytes", "size", "uid", "worker"):
            rec[k] = int(rec[k])
        rec["path"] = unescape_text_path(rec["path"])
        for k in ("op", "status"):
            rec[k] = rec[k].decode()
        out.append(rec)
    return out


def unread_by_peer(c):
    """Bytes this client sent that the daemon has not read yet (SIOCOUTQ)."""
    buf = fcntl.ioctl(c.sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return struct.unpack("i", buf)[0]


def read_json_line(p, timeout):
    r, _, _ = select.select([p.stdout], [], [], timeout)
    assert r, "no output from the client within %ss" % timeout
    line = p.stdout.readline()
    assert line, "client exited: %r" % p.stderr.read()
    return json.loads(line)


@pytest.mark.pf_timeout(240)
def test_client_killed_mid_transfer(daemon, runner, bigfile):
    name, size, digest = link_big(bigfile, daemon)
    daemon.put("small", b"small")
    daemon.set("server", "workers", "1")  # a stuck worker would stall everything
    daemon.start()
    p = runner.popen_pfp(None, daemon.sock, "get", name, "--stall-after", str(4 << 20))
    first = read_json_line(p, 30)
    assert first == {"stalled": 4 << 20, "body_len": size}
    p.kill()
    p.wait(timeout=10)
    # the next requests work, including a whole big transfer
    with daemon.conn(timeout=60) as c:
        assert c.get("small").body == b"small"
        r = c.get(name, keep=False)
        assert (r.received, r.sha256) == (size, digest)
    assert daemon.running()
    assert daemon.stop() == 0
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    assert len(recs) == 3
    killed = [r for r in recs if r["pid"] == p.pid]
    assert len(killed) == 1
    assert (4 << 20) <= killed[0]["bytes"] < size, killed[0]
    assert killed[0]["size"] == size


@pytest.mark.parametrize("how", ["close", "reset", "half_close"])
def test_client_hangs_up_mid_transfer(daemon, bigfile, how):
    name, size, digest = link_big(bigfile, daemon)
    daemon.put("small", b"small")
    daemon.set("server", "workers", "1")
    daemon.start()
    for _ in range(5):
        c = daemon.conn(timeout=30)
        c.send(pfp.get_request(name) + pfp.get_request("small"))
        r = c.read_header()
        c.read_body(r, keep=False, limit=100000)
        if how == "reset":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if how == "half_close":
            c.sock.shutdown(socket.SHUT_RD)
        c.close()
    with daemon.conn(timeout=30) as c:
        assert c.get("small").body == b"small"
    wait_for(lambda: sum(name.encode() in l for l in daemon.log_lines()) == 5, 15,
             "a log line for each dropped transfer")
    assert daemon.stop() == 0


@pytest.mark.pf_timeout(60)
@pytest.mark.parametrize("how", ["close", "reset"])
def test_pipelined_requests_of_a_client_that_hangs_up_each_get_a_line(daemon, how):
    """50 GETs pipelined, the client hangs up during the first body: the
    daemon had read all 50, so the log has 50 lines for the connection: the
    partial transfer, then 49 abandoned requests, in order."""
    data = os.urandom(8 << 20)  # far more than the socket buffers hold
    daemon.put("f.bin", data)
    daemon.put("small", b"small")
    daemon.set("server", "workers", "1")
    daemon.set("server", "send_buffer", "0")  # the kernel's: 8 MiB never fit
    daemon.start()
    c = daemon.conn(timeout=30)
    c.send(pfp.get_request("f.bin") * 50)
    r = c.read_header()
    assert (r.name, r.body_len) == ("OK", len(data)), r
    c.read_body(r, keep=False, limit=100000)
    wait_for(lambda: unread_by_peer(c) == 0, 10, "the daemon to read all 50 requests")
    if how == "reset":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    assert daemon.get("small").body == b"small"  # healthy, and conn 2
    wait_for(lambda: len([x for x in log_records(daemon) if x["conn"] == 1]) >= 50, 15,
             "50 lines for the connection")
    assert daemon.stop() == 0
    recs = [x for x in log_records(daemon) if x["conn"] == 1]
    assert len(recs) == 50, [(x["status"], x["bytes"]) for x in recs]
    first, rest = recs[0], recs[1:]
    assert (first["op"], first["path"], first["status"]) == ("GET", b"f.bin", "OK"), first
    assert 100000 <= first["bytes"] < len(data), first
    for x in rest:
        assert (x["op"], x["path"], x["bytes"], x["size"]) == ("GET", b"f.bin", 0, 0), x
        assert x["status"] in ABANDONED, x
    assert [x["conn"] for x in log_records(daemon)].count(2) == 1


def test_requests_after_a_partial_one_are_logged_once(daemon):
    """Two whole requests and half of a third behind a transfer the client
    abandons: two ABANDONED lines and one EPROTO (op known, path not)."""
    data = os.urandom(4 << 20)
    daemon.put("f.bin", data)
    daemon.set("server", "send_buffer", "0")  # the kernel's: 4 MiB never fit
    daemon.start()
    c = daemon.conn(timeout=30)
    c.send(pfp.get_request("f.bin") + pfp.stat_request("a") + pfp.get_request("b")
           + pfp.stat_request("cdef")[:24])
    r = c.read_header()
    c.read_body(r, keep=False, limit=50000)
    wait_for(lambda: unread_by_peer(c) == 0, 10, "the daemon to read the requests")
    c.close()
    wait_for(lambda: len(daemon.log_lines()) >= 4, 15, "4 lines")
    assert daemon.stop() == 0
    recs = [(x["op"], x["path"], x["status"]) for x in log_records(daemon)]
    assert len(recs) == 4, recs
    assert recs[0] == ("GET", b"f.bin", "OK"), recs
    assert recs[1][:2] == ("STAT", b"a") and recs[1][2] in ABANDONED, recs
    assert recs[2][:2] == ("GET", b"b") and recs[2][2] in ABANDONED, recs
    assert recs[3] == ("STAT", b"", "EPROTO"), recs


def test_client_disconnects_with_requests_pending(daemon):
    daemon.put("f", os.urandom(300000))
    daemon.start()
    for _ in range(20):
        c = daemon.conn()
        c.send(pfp.get_request("f") * 50)
        c.close()
    assert daemon.get("f").name == "OK"
    assert daemon.stop() == 0
    # every request the daemon read has one line: at most 50 per connection
    # (it may close before reading them all), each one answered in part or
    # abandoned, and none for requests it never read
    recs = log_records(daemon)
    per_conn = {}
    for x in recs:
        per_conn.setdefault(x["conn"], []).append(x)
    assert len(per_conn) == 21
    for conn, xs in per_conn.items():
        assert 1 <= len(xs) <= 50, (conn, len(xs))
        assert all(x["status"] in ("OK",) + ABANDONED for x in xs), xs


class Relay:
    """A one-connection relay between a client and the daemon that passes
    the request through, then only the first `limit` bytes of the answer, and
    then stalls ("stall") or hangs up ("close"). Makes a client's partial
    transfer deterministic."""

    def __init__(self, upstream, path, limit, then):
        self.upstream, self.path, self.limit, self.then = str(upstream), str(path), limit, then
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.passed = 0
        self.socks = [self.listener]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            down, _ = self.listener.accept()
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.upstream)
            self.socks += [down, up]
            down.settimeout(30)
            up.settimeout(30)
            req = down.recv(65536)
            up.sendall(req)
            while self.passed < self.limit:
                chunk = up.recv(min(65536, self.limit - self.passed))
                if not chunk:
                    break
                down.sendall(chunk)
                self.passed += len(chunk)
            self.done.set()
            if self.then == "close":
                down.close()
                up.close()
        except OSError:
            self.done.set()

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.thread.join(10)


def cli_stalled_mid_transfer(daemon, runner, workdir, bigfile):
    """The CLI fetching a big file with -o through a relay that passes 4 MiB
    and then stalls; returns once the CLI is writing its temporary file:
    (name, out path, relay, process)."""
    name, size, digest = link_big(bigfile, daemon)
    daemon.start()
    out = workdir / "out" / "big.out"
    out.parent.mkdir()
    relay = Relay(daemon.sock, workdir / "relay.sock", 4 << 20, "stall")
    argv = [str(runner.tools / "pipefile"), "-s", relay.path, "get", name, "-o", str(out)]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    runner.procs.append(p)
    try:
        assert relay.done.wait(30)
        wait_for(lambda: sum(f.stat().st_size for f in out.parent.iterdir()) > 0, 30,
                 "the CLI writing its temporary file")
    except BaseException:
        relay.close()
        raise
    return name, out, relay, p


@pytest.mark.pf_timeout(120)
def test_cli_killed_mid_transfer_leaves_no_file(daemon, runner, workdir, bigfile):
    name, out, relay, p = cli_stalled_mid_transfer(daemon, runner, workdir, bigfile)
    try:
        assert p.poll() is None
        p.kill()
        p.wait(timeout=10)
        # a killed process cannot clean up, but nothing sits under OUT itself
        assert not out.exists(), "a partial file under the -o name"
    finally:
        relay.close()
    assert daemon.get(name, length=10).received == 10


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_interrupted_removes_temp_file(daemon, runner, workdir, bigfile, sig):
    name, out, relay, p = cli_stalled_mid_transfer(daemon, runner, workdir, bigfile)
    try:
        p.send_signal(sig)
        assert p.wait(timeout=10) != 0
        assert list(out.parent.iterdir()) == [], "left behind: %r" % list(out.parent.iterdir())
    finally:
        relay.close()


def test_cli_short_body_exit_76_and_no_file(daemon, runner, workdir):
    daemon.put("f", os.urandom(1 << 20))
    daemon.start()
    out = workdir / "out" / "f.out"
    out.parent.mkdir()
    relay = Relay(daemon.sock, workdir / "relay.sock", 32 + 5000, "close")
    try:
        p = runner.cli(None, "-s", relay.path, "get", "f", "-o", out, timeout=30)
    finally:
        relay.close()
    assert p.returncode == 76, p.stderr
    assert p.stderr.startswith(b"pipefile: f: "), p.stderr
    assert list(out.parent.iterdir()) == []

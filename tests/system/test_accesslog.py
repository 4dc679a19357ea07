"""The access log: exactly one line per request (served, refused, malformed),
none for a connection that never sent a request; every field right, in text
and JSON; hostile names cannot forge lines; the file is reopened on SIGUSR1
and SIGHUP (logrotate); a full disk never stops the daemon."""

import datetime
import os
import signal
import subprocess
import time

import pytest

import pfp
from conftest import (UID_C, USER_C, need_root, parse_log_line, username, wait_for)

FOUR_K = bytes(range(256)) * 16
HOSTILE = b'evil\n"quote\\back\x01\x7f\xff name'
FORGED = (b'x\ntime=2020-01-01T00:00:00.000Z worker=1 conn=1 pid=1 uid=0 user=root '
          b'gid=0 proto=pfp1 op=GET path="y" status=OK bytes=1 size=1 duration_us=1')


class Expect:
    """The requests a test made, to compare with the log."""

    def __init__(self):
        self.items = []  # (group, op, path, status, bytes, size, uid, gid, pid)

    def add(self, group, op, path, status, nbytes=0, size=0, uid=None, gid=None, pid=None):
        """uid/gid/pid default to this test process's."""
        if isinstance(path, str):
            path = path.encode()
        self.items.append((group, op, path, status, nbytes, size,
                           os.geteuid() if uid is None else uid,
                           os.getegid() if gid is None else gid,
                           os.getpid() if pid is None else pid))


def do_requests(d, runner, exp):
    """A mix of every kind of request; returns nothing, fills exp."""
    with d.conn() as c:  # group c1: one connection, sequential
        assert c.get("four_k").name == "OK"
        exp.add("c1", "GET", "four_k", "OK", 4096, 4096)
        assert c.stat("four_k").name == "OK"
        exp.add("c1", "STAT", "four_k", "OK", 0, 4096)
        assert c.get("missing").name == "ENOENT"
        exp.add("c1", "GET", "missing", "ENOENT")
        assert c.get("dir").name == "ENOTREG"
        exp.add("c1", "GET", "dir", "ENOTREG")
        assert c.get("../x").name == "EXDEV"
        exp.add("c1", "GET", "../x", "EXDEV")
        assert c.get("four_k", offset=5000).name == "ERANGE"
        exp.add("c1", "GET", "four_k", "ERANGE", 0, 4096)  # opened: size known
        assert c.get("four_k", offset=100, length=50).body == FOUR_K[100:150]
        exp.add("c1", "GET", "four_k", "OK", 50, 4096)
        assert c.stat("/four_k").name == "OK"
        exp.add("c1", "STAT", "/four_k", "OK", 0, 4096)
    with d.conn() as c:  # group c2: five pipelined requests
        c.send(pfp.get_request("four_k") * 5)
        for _ in range(5):
            assert c.read_response().body == FOUR_K
            exp.add("c2", "GET", "four_k", "OK", 4096, 4096)
    with d.conn() as c:
        assert c.get(HOSTILE).body == b"hostile"
        exp.add("c3", "GET", HOSTILE, "OK", 7, 7)
        assert c.get(FORGED).name == "ENOENT"
        exp.add("c3", "GET", FORGED, "ENOENT")
    with d.conn() as c:  # malformed: too broken to tell op or path
        c.send(b"X")
        assert c.read_response().name == "EPROTO"
        exp.add("c4", "-", b"", "EPROTO")
    with d.conn() as c:
        c.send(pfp.encode_request(pfp.OP_GET, b""))
        assert c.read_response().name == "EPROTO"
        exp.add("c5", None, None, "EPROTO")  # op/path: not asserted
    with d.conn():  # connects and leaves without a request: no line
        pass
    with d.conn() as c:
        assert c.get("four_k", close=True).body == FOUR_K
        exp.add("c6", "GET", "four_k", "OK", 4096, 4096)
        assert c.closed_by_peer()
    p = subprocess.Popen([str(runner.tools / "pipefile"), "-s", str(d.sock), "get", "four_k"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out) == (0, FOUR_K), err
    exp.add("cli", "GET", "four_k", "OK", 4096, 4096, pid=p.pid)
    if os.geteuid() == 0:
        pp = runner.popen_pfp(USER_C, d.sock, "get", "secret", "four_k")
        out, err = pp.communicate(timeout=30)
        assert pp.returncode == 0, err
        assert b'"EACCES"' in out and b'"OK"' in out, out
        exp.add("user_c", "GET", "secret", "EACCES", uid=UID_C, gid=UID_C, pid=pp.pid)
        exp.add("user_c", "GET", "four_k", "OK", 4096, 4096, uid=UID_C, gid=UID_C, pid=pp.pid)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_one_line_per_request_with_all_fields(daemon, runner, fmt):
    daemon.put("four_k", FOUR_K)
    daemon.put(HOSTILE, b"hostile")
    daemon.put("secret", b"root only", mode=0o600)
    daemon.mkdir("dir")
    daemon.set("log", "access_format", fmt)
    daemon.set("server", "workers", "2")
    daemon.start()
    t0 = datetime.datetime.now(datetime.timezone.utc)
    exp = Expect()
    do_requests(daemon, runner, exp)
    t1 = datetime.datetime.now(datetime.timezone.utc)
    assert daemon.stop() == 0  # flushes the log
    lines = daemon.log_lines()
    assert len(lines) == len(exp.items), b"\n".join(lines).decode(errors="replace")
    recs = [parse_log_line(l, fmt) for l in lines]

    # Match lines to requests: per group, in request order.
    by_conn = {}
    for r in recs:
        by_conn.setdefault(r["conn"], []).append(r)
    groups = {}
    for g, *_ in exp.items:
        groups.setdefault(g, [])
    for item in exp.items:
        groups[item[0]].append(item)
    assert len(by_conn) == len(groups), "conn ids %r vs groups %r" % (sorted(by_conn), sorted(groups))
    unmatched = dict(by_conn)
    for g, items in groups.items():
        found = None
        for conn, rs in unmatched.items():
            if len(rs) != len(items):
                continue
            if all((it[1] is None or r["op"] == it[1]) and (it[2] is None or r["path"] == it[2])
                   and r["status"] == it[3] for it, r in zip(items, rs)):
                found = conn
                break
        assert found is not None, "no log lines for %s: %r" % (g, items)
        rs = unmatched.pop(found)
        for (grp, op, path, status, nbytes, size, uid, gid, pid), r in zip(items, rs):
            assert r["bytes"] == nbytes, (g, r)
            assert r["size"] == size, (g, r)
            assert r["uid"] == uid, (g, r)
            assert r["gid"] == gid, (g, r)
            assert r["user"] == username(uid), (g, r)
            assert r["pid"] == pid, (g, r)
            assert 1 <= r["worker"] <= 2, r
            assert 0 <= r["duration_us"] < 60_000_000, r
            when = datetime.datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc)
            assert t0 - datetime.timedelta(seconds=2) <= when <= t1 + datetime.timedelta(seconds=2), r
    if os.geteuid() == 0:
        assert [r["user"] for r in recs if r["uid"] == UID_C] == [str(UID_C)] * 2
    if fmt == "text":
        raw = [l for l in lines if b"evil" in l]
        assert len(raw) == 1
        assert b'path="evil\\x0a\\"quote\\\\back\\x01\\x7f\\xff name"' in raw[0].lower(), raw[0]


def test_access_log_to_stderr(daemon):
    daemon.put("f", b"x")
    daemon.set("log", "access_log", "stderr")
    daemon.start()
    for _ in range(7):
        assert daemon.get("f").name == "OK"
    assert daemon.get("nope").name == "ENOENT"
    assert daemon.stop() == 0
    lines = [l for l in daemon.stderr().splitlines() if l.startswith("time=")]
    assert len(lines) == 8, daemon.stderr()
    for l in lines:
        parse_log_line(l.encode(), "text")
    assert not daemon.access_log.exists()


def test_access_log_off(daemon):
    daemon.put("f", b"x")
    daemon.set("log", "access_log", "off")
    daemon.start()
    assert daemon.get("f").name == "OK"
    assert daemon.stop() == 0
    assert not daemon.access_log.exists()
    assert "time=" not in daemon.stderr()


@pytest.mark.parametrize("sig", ["SIGUSR1", "SIGHUP"])
def test_log_reopen_after_rename(daemon, sig):
    """logrotate: rename the file, signal, and new lines go to a new file at
    the old name; every line lands in exactly one of the two files."""
    daemon.put("f", b"x")
    daemon.start()
    rotated = daemon.dir / "access.log.1"
    for i in range(3):
        assert daemon.get("before%d" % i).name == "ENOENT"
    wait_for(lambda: len(daemon.log_lines()) == 3, 10, "3 lines in the log")
    os.rename(daemon.access_log, rotated)
    assert daemon.get("between").name == "ENOENT"  # still goes to the open file
    wait_for(lambda: b"between" in rotated.read_bytes(), 10, "a line in the renamed file")
    daemon.kill(getattr(signal, sig))
    # Ask until a request's line shows up in the new file: the reopen is
    # asynchronous, so which probe lands first in the new file may vary.
    n = [0]

    def probe_in_new_file():
        n[0] += 1
        assert daemon.get("probe%d" % n[0]).name == "ENOENT"
        return daemon.access_log.exists() and any(b"probe" in l for l in daemon.log_lines())

    wait_for(probe_in_new_file, 10, "a line in the reopened access log", interval=0.05)
    for i in range(3):
        assert daemon.get("after%d" % i).name == "ENOENT"
    assert daemon.stop() == 0
    old = rotated.read_bytes().splitlines()
    new = daemon.log_lines()
    assert len(old) + len(new) == 3 + 1 + n[0] + 3
    assert sum(b"before" in l for l in old) == 3 and b"between" in old[3]
    assert sum(b"after" in l for l in new) == 3
    # once the new file is in use, nothing more goes to the old one
    assert not any(b"after" in l for l in old)
    for l in old + new:
        parse_log_line(l, "text")
    assert "error" not in daemon.stderr().lower()


@pytest.mark.pf_timeout(120)
def test_full_disk_never_stops_the_daemon(daemon, workdir):
    need_root()
    full = workdir / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True,
                   capture_output=True)
    try:
        daemon.put("f", b"x" * 100)
        daemon.set("log", "access_log", str(full / "access.log"))
        daemon.start()
        filler = full / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 1024)
        except OSError:
            pass
        finally:
            os.close(fd)
        t0 = time.monotonic()
        for i in range(500):
            assert daemon.get("f").name == "OK"
        assert time.monotonic() - t0 < 30
        wait_for(lambda: "dropped" in daemon.stderr(), 15, "a report of dropped log lines")
        assert "pipefiled: error:" in daemon.stderr() or "pipefiled: warning:" in daemon.stderr()
        # space again: lines are written again
        os.unlink(filler)
        wait_for(lambda: (daemon.get("after-full").name == "ENOENT") and
                 b"after-full" in (full / "access.log").read_bytes(), 15,
                 "log lines after space came back", interval=0.1)
        assert daemon.stop() == 0
    finally:
        if daemon.running():
            daemon.stop()
        subprocess.run(["umount", str(full)], capture_output=True)

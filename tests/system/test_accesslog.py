"""The access log: exactly one line per request (served, refused, malformed),
none for a connection that never sent a request; every field right, in text
and JSON; hostile names cannot forge lines, nor split a JSON line, nor run
anything when a text line is pasted into a shell; the file is reopened on
SIGUSR1 and SIGHUP (logrotate); a full disk never stops the daemon: with
log_full = drop the lines are dropped and counted, with log_full = block
(the default) they wait and all reach the file once there is space."""

import datetime
import json
import os
import re
import signal
import subprocess
import time

import pytest

import pfp
from conftest import (UID_C, USER_C, need_root, parse_log_line, unescape_text_path, username,
                      wait_for)

DROP_RE = re.compile(r"^pipefiled: error: access log: (\d+) records dropped \((.*)\)$", re.M)


def drop_reports(err):
    """[(count, why)] of the access log's drop reports in stderr text."""
    return [(int(n), why) for n, why in DROP_RE.findall(err)]


def resolved_field(line, fmt):
    """The resolved path of an access-log line as bytes, or None for none
    ("-" in text, null in JSON)."""
    if fmt == "json":
        v = json.loads(line.decode("utf-8", "surrogateescape"))["resolved"]
        return None if v is None else v.encode("utf-8", "surrogateescape")
    m = re.search(rb' resolved=("(?:[^"\\]|\\.)*"|-) status=', line)
    assert m, "no resolved field in %r" % line[:300]
    return None if m.group(1) == b"-" else unescape_text_path(m.group(1))


def cut_ok(got, wire):
    """Whether a logged path (decoded) is the wire path whole, or its head
    and tail around the marker "...[truncated N bytes]..." with N the bytes
    left out between them. (Decoded, an escaped '[' reads like the marker's:
    a test that must tell them apart looks at the raw line, where only the
    marker's '[' is raw.)"""
    if got == wire:
        return True
    m = re.fullmatch(rb"(.*?)\.\.\.\[truncated (\d+) bytes\]\.\.\.(.*)", got, re.S)
    return bool(m) and wire.startswith(m.group(1)) and wire.endswith(m.group(3)) and \
        len(m.group(1)) + int(m.group(2)) + len(m.group(3)) == len(wire)

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
    pp = runner.popen_pfp(USER_C, d.sock, "get", "secret", "four_k")
    out, err = pp.communicate(timeout=30)
    assert pp.returncode == 0, err
    assert b'"EACCES"' in out and b'"OK"' in out, out
    exp.add("user_c", "GET", "secret", "EACCES", uid=UID_C, gid=UID_C, pid=pp.pid)
    exp.add("user_c", "GET", "four_k", "OK", 4096, 4096, uid=UID_C, gid=UID_C, pid=pp.pid)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_one_line_per_request_with_all_fields(daemon, runner, fmt):
    need_root()  # another user's requests, logged with its uid
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


class FullDisk:
    """A 64 KiB tmpfs for the access log, and a filler file that takes every
    byte of it until removed."""

    def __init__(self, workdir):
        need_root()
        self.dir = workdir / "full"
        self.dir.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(self.dir)],
                       check=True, capture_output=True)
        self.log = self.dir / "access.log"
        self.filler = self.dir / "filler"

    def fill(self):
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 1024)
        except OSError:
            pass
        finally:
            os.close(fd)

    def free(self):
        os.unlink(self.filler)

    def umount(self):
        subprocess.run(["umount", str(self.dir)], capture_output=True)


@pytest.mark.pf_timeout(120)
def test_full_disk_drop_never_stops_the_daemon(daemon, workdir):
    """log_full = drop: requests are served at full speed, the lines that do
    not fit are dropped, counted and reported; once there is space again,
    lines are written again."""
    disk = FullDisk(workdir)
    try:
        daemon.put("f", b"x" * 100)
        daemon.set("log", "access_log", str(disk.log))
        daemon.set("log", "log_full", "drop")
        daemon.start()
        disk.fill()
        t0 = time.monotonic()
        for i in range(500):
            assert daemon.get("f").name == "OK"
        assert time.monotonic() - t0 < 30
        wait_for(lambda: "dropped" in daemon.stderr(), 15, "a report of dropped log lines")
        assert "pipefiled: error:" in daemon.stderr() or "pipefiled: warning:" in daemon.stderr()
        assert "access log: blocked" not in daemon.stderr()
        # space again: lines are written again
        disk.free()
        wait_for(lambda: (daemon.get("after-full").name == "ENOENT") and
                 b"after-full" in disk.log.read_bytes(), 15,
                 "log lines after space came back", interval=0.1)
        assert daemon.stop() == 0
        # every request is either in the file or counted as dropped
        lines = disk.log.read_bytes().splitlines()
        served = sum(1 for l in lines if b' path="f" ' in l)
        why = "%s: %s" % (disk.log, os.strerror(28))  # ENOSPC
        reports = drop_reports(daemon.stderr())
        assert all(w == why for _, w in reports), reports
        assert served + sum(n for n, _ in reports) == 500, (served, reports)
    finally:
        if daemon.running():
            daemon.stop()
        disk.umount()


@pytest.mark.pf_timeout(120)
def test_full_disk_block_keeps_every_line(daemon, workdir):
    """log_full = block (the default): while the disk is full no line is
    dropped; the error log says once that the log is blocked and once that
    it resumed; when space comes back every request's line is in the
    file."""
    disk = FullDisk(workdir)
    try:
        daemon.put("f", b"x" * 100)
        daemon.set("log", "access_log", str(disk.log))
        daemon.start()
        disk.fill()
        for i in range(50):  # the queue holds these: served without waiting
            assert daemon.get("f%d" % i).name == "ENOENT"
        blocked = "pipefiled: error: access log: blocked: %s: %s;" % (disk.log, os.strerror(28))
        wait_for(lambda: blocked in daemon.stderr(), 15, "the blocked message")
        time.sleep(1.5)  # retries meanwhile drop nothing
        assert "dropped" not in daemon.stderr(), daemon.stderr()
        disk.free()
        wait_for(lambda: "access log: resumed: %s takes writes again" % disk.log
                 in daemon.stderr(), 15, "the resumed message")
        assert daemon.get("after").name == "ENOENT"
        wait_for(lambda: b"after" in disk.log.read_bytes(), 15, "the line after")
        assert daemon.stop() == 0
        data = disk.log.read_bytes()
        assert data.endswith(b"\n"), data[-200:]
        # (each request on its own connection: their records may be queued
        # in either order)
        paths = [parse_log_line(l, "text")["path"] for l in data.splitlines()]
        assert sorted(paths) == sorted([b"f%d" % i for i in range(50)] + [b"after"]), paths
        err = daemon.stderr()
        assert err.count("access log: blocked:") == 1, err
        assert err.count("access log: resumed:") == 1, err
        assert "dropped" not in err, err
    finally:
        if daemon.running():
            daemon.stop()
        disk.umount()


# Code points that split lines (NEL, LINE and PARAGRAPH SEPARATOR) and C1
# controls a terminal acts on; valid UTF-8, so a naive encoder keeps them.
SPLITTERS = ["\u0085", "\u2028", "\u2029", "\u0080", "\u008d", "\u009b", "\u009f"]


def test_json_escapes_line_separators_and_c1(daemon):
    names = ["sep-%04x-%s-end" % (ord(c), c) for c in SPLITTERS]
    for n in names:
        daemon.put(n, b"x")
    forged = '\u2028{"time":"2020-01-01T00:00:00.000Z","uid":0,"path":"y"}\u2028'
    daemon.set("log", "access_format", "json")
    daemon.start()
    for n in names:
        assert daemon.get(n).body == b"x"
    assert daemon.get(forged).name == "ENOENT"
    assert daemon.stop() == 0
    lines = daemon.log_lines()
    assert len(lines) == len(names) + 1
    got = []
    for raw in lines:
        text = raw.decode("utf-8")  # valid UTF-8
        assert text.splitlines() == [text], "a line splitter inside: %r" % raw
        for c in SPLITTERS:
            assert c not in text, "raw U+%04X in %r" % (ord(c), raw)
        rec = parse_log_line(raw, "json")
        got.append(rec["path"])
        assert json.loads(text)["uid"] == os.geteuid()
    assert sorted(got) == sorted([n.encode() for n in names] + [forged.encode()])
    for c in SPLITTERS:  # each is written as its \uXXXX escape
        assert any(("\\u%04x" % ord(c)).encode() in l for l in lines), c


def test_text_line_inert_in_a_shell(daemon, workdir):
    """A text line pasted into a shell runs nothing: $(...), backticks,
    ${...} and ! inside the quoted path are escaped bytes."""
    marker = workdir / "pwned"
    name = "x$(touch %s)`touch %s`${HOME}!!$x" % (marker, marker)
    daemon.set("log", "access_format", "text")
    daemon.start()
    assert daemon.get(name).name == "ENOENT"
    assert daemon.stop() == 0
    (line,) = daemon.log_lines()
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", line.decode()], cwd=str(workdir),
                       env={"PATH": "/usr/bin:/bin", "HOME": str(workdir)},
                       capture_output=True, timeout=30)
    assert not marker.exists(), "the log line ran a command in a shell: %r" % line
    assert p.returncode == 0, p.stderr
    for b in (b"$", b"`", b"!"):
        assert b not in line, line
    assert parse_log_line(line, "text")["path"] == name.encode()


# Bidi controls and invisible code points: valid UTF-8, so a naive encoder
# keeps them, and a terminal then shows the rest of the line reversed or a
# name that is not the one served (issue 5).
HIDDEN = ["\u061c", "\u200b", "\u200e", "\u200f", "\u202a", "\u202e", "\u2060", "\u2066",
          "\u2069", "\ufeff"]


def test_json_escapes_bidi_and_invisible(daemon):
    """A name holding U+202E (RIGHT-TO-LEFT OVERRIDE) and its kin is logged
    with each written \\uXXXX: the JSON line holds none of them raw, so a
    terminal shows it as written, status included; the path decodes to the
    name served."""
    names = ["bidi-%04x-%scod.exe-end" % (ord(c), c) for c in HIDDEN]
    for n in names:
        daemon.put(n, b"x")
    daemon.set("log", "access_format", "json")
    daemon.start()
    for n in names:
        assert daemon.get(n).body == b"x"
    assert daemon.stop() == 0
    lines = daemon.log_lines()
    assert len(lines) == len(names)
    for raw in lines:
        text = raw.decode("utf-8")
        for c in HIDDEN:
            assert c not in text, "raw U+%04X in %r" % (ord(c), raw)
    assert sorted(parse_log_line(l, "json")["path"] for l in lines) == \
        sorted(n.encode() for n in names)
    for c in HIDDEN:  # each is written as its \uXXXX escape
        assert any(("\\u%04x" % ord(c)).encode() in l for l in lines), c


FORGED_CUT = "report...[truncated 3000 bytes]...x"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_name_cannot_forge_a_cut(daemon, fmt):
    """A file really named like a cut path is logged so that no reader can
    take it for one: its '[' is escaped (\\x5b in text, \\u005b in JSON),
    while the formatter's own marker is the only raw '[' a line holds."""
    daemon.put(FORGED_CUT, b"forged")
    daemon.set("log", "access_format", fmt)
    daemon.start()
    assert daemon.get(FORGED_CUT).body == b"forged"
    assert daemon.stop() == 0
    (line,) = daemon.log_lines()
    assert b"[" not in line, line
    esc = b"\\x5b" if fmt == "text" else b"\\u005b"
    assert b'"path":"' + FORGED_CUT.encode().replace(b"[", esc) + b'"' in line or \
        b'path="' + FORGED_CUT.encode().replace(b"[", esc) + b'"' in line, line
    rec = parse_log_line(line, fmt)
    assert rec["path"] == FORGED_CUT.encode() and rec["status"] == "OK", rec

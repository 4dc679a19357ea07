"""The access log as an audit record under a flood (issue 5): two users
flooding the daemon with long non-ASCII paths -- the records slowest to
format and the largest to queue -- cannot hide a third user's reads. Every
successful read of the third user has its line; every request of the
flooders is either logged or counted in a drop report (with the serving
side's back-pressure, none is dropped: they wait). Root only: real uids.

The access log goes to a FIFO the test reads as it comes, keeping only the
third user's lines and counting the others: the flood writes hundreds of
megabytes of log text, which need not touch the disk."""

import json
import os
import subprocess
import threading
import time

import pytest

from conftest import (CHILD_ENV, PY, UID_C, USER_A, USER_B, USER_C, need_root,
                      parse_log_line)
from test_accesslog import drop_reports

# 4080 bytes of 0x80 on the wire, then a way back out: the lexical
# normaliser accepts it, and it serves "tiny".
FLOOD_PATH = b"\x80" * 4080 + b"/../tiny"
FLOOD_SECONDS = 4.0
FLOOD_CONNS = 4  # per flooding user
FLOOD_PIPELINE = 16
C_START_S = 0.5  # the third user starts once the flood is under way
C_CONNS, C_REQUESTS = 2, 60  # and must be done well before it ends

# A flooder: FLOOD_CONNS connections, each sending FLOOD_PIPELINE GETs of
# the path and reading the answers, until the time is up. Prints
# {"ok": N, "other": N}.
FLOODER = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import pfp
sock, path, seconds = sys.argv[2], bytes.fromhex(sys.argv[3]), float(sys.argv[4])
conns, pipeline = int(sys.argv[5]), int(sys.argv[6])
req = pfp.get_request(path)
stats = {"ok": 0, "other": 0}
lock = threading.Lock()
deadline = time.monotonic() + seconds
def run():
    ok = other = 0
    with pfp.Conn(sock, 120.0) as c:
        while time.monotonic() < deadline:
            c.send(req * pipeline)
            for _ in range(pipeline):
                r = c.read_response(keep=False)
                if r.name == "OK":
                    ok += 1
                else:
                    other += 1
    with lock:
        stats["ok"] += ok
        stats["other"] += other
threads = [threading.Thread(target=run) for _ in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(stats))
"""


def flooder(runner, user, sock):
    """Start FLOODER as user; the runner kills it if the test fails."""
    argv = user.setpriv() + [PY, "-I", "-c", FLOODER, str(runner.tools), str(sock),
                             FLOOD_PATH.hex(), str(FLOOD_SECONDS), str(FLOOD_CONNS),
                             str(FLOOD_PIPELINE)]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=str(runner.tools), env=CHILD_ENV)
    runner.procs.append(p)
    return p


class FifoLog:
    """Reads the access log from a FIFO in a thread: keeps the lines of one
    uid, counts the rest."""

    def __init__(self, path, keep_uid):
        self.path = path
        os.mkfifo(path, 0o600)
        # Open before the daemon does (non-blocking: there is no writer
        # yet), so its open for writing does not wait.
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.mark = b" uid=%d " % keep_uid
        self.kept, self.others, self.rest = [], 0, b""
        self.writer = threading.Event()  # the daemon holds the write end
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.writer.wait()
        os.set_blocking(self.fd, True)
        while True:
            data = os.read(self.fd, 1 << 20)
            if not data:
                return  # the daemon closed its end
            lines = (self.rest + data).split(b"\n")
            self.rest = lines.pop()
            for line in lines:
                if self.mark in line:
                    self.kept.append(line)
                else:
                    self.others += 1

    def close(self, timeout=60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the access log FIFO never reached EOF"
        os.close(self.fd)
        assert self.rest == b"", "the log ends mid-line: %r" % self.rest[:200]


@pytest.mark.pf_timeout(300)
def test_flood_cannot_hide_a_third_users_reads(daemon, runner, workdir):
    need_root()
    daemon.put("tiny", b"t")
    daemon.mkdir("c", mode=0o755)
    spec = []
    for i in range(10):
        data = os.urandom(100 + i)
        name = "c/f%d" % i
        daemon.put(name, data, mode=0o600, uid=UID_C, gid=UID_C)
        spec.append({"path": name, "status": "OK", "size": len(data)})
    spec_file = workdir / "c.json"
    spec_file.write_text(json.dumps(spec))
    os.chmod(spec_file, 0o644)

    log = FifoLog(daemon.dir / "access.fifo", UID_C)
    daemon.set("log", "access_log", str(log.path))
    daemon.set("server", "workers", "2")
    daemon.start()
    log.writer.set()

    t0 = time.monotonic()
    floods = [flooder(runner, user, daemon.sock) for user in (USER_A, USER_B)]
    time.sleep(C_START_S)
    c_res = runner.pfp(USER_C, daemon.sock, "load", "--spec", "@%s" % spec_file,
                       "--conns", C_CONNS, "--requests", C_REQUESTS, "--pipeline", 1)[-1]
    c_done = time.monotonic() - t0
    results = []
    for p in floods:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    print("flood: %r; the third user's %d reads done %.2f s into the %.1f s flood" %
          (results, C_CONNS * C_REQUESTS, c_done, FLOOD_SECONDS))
    assert (c_res["ok"], c_res["errors"], c_res["mismatch"]) == \
        (C_CONNS * C_REQUESTS, 0, 0), c_res
    assert c_done < FLOOD_SECONDS - 0.5, "the third user's reads did not all fall in the flood"
    for res in results:
        assert res["other"] == 0 and res["ok"] > 1000, res

    assert daemon.stop() == 0
    log.close()
    # Every read of the third user has its line.
    mine = [parse_log_line(l, "text") for l in log.kept]
    assert len(mine) == c_res["ok"], "%d of the third user's %d reads have no line" % (
        c_res["ok"] - len(mine), c_res["ok"])
    sizes = {e["path"].encode(): e["size"] for e in spec}
    for r in mine:
        assert r["uid"] == UID_C and r["status"] == "OK", r
        assert r["bytes"] == r["size"] == sizes[r["path"]], r
    # The flooders' requests: each logged too. Over their share of the
    # queue they waited (back-pressure) instead of being served unlogged,
    # so nothing was lost at all.
    reports = drop_reports(daemon.stderr())
    flooded = sum(res["ok"] for res in results)
    print("flood: %d flooder requests, %d lines, drop reports %r" %
          (flooded, log.others, reports))
    assert reports == [], reports
    assert log.others == flooded

"""Fault injection: the access log's disk is full, log_full = block (the
default), until the queue is full too (issue 11, item 3). No byte is served
whose record cannot be written: once the in-memory queue (this user's share
of it) is full, a request waits at most send_timeout and is then refused,
EBUSY saying why, and closed — never an endless hang; when space comes back,
logging resumes by itself and every answer the clients got has its line.
(The first records, which the queue holds, and log_full = drop with its
count of lost lines: test_accesslog.py, test_full_disk_*.)"""

import os
import subprocess
import time

import pytest

from conftest import need_root, parse_log_line, wait_for
from test_accesslog import FullDisk, drop_reports
from test_backpressure import LOG_BUSY, LONG, Flooder, stalled

SEND_TIMEOUT = 2.0


class BigFullDisk(FullDisk):
    """test_accesslog's FullDisk on a 1 MiB tmpfs: room, once the filler
    goes, for the whole backlog of long records (a user's share of the
    queue, 256 KiB)."""

    def __init__(self, workdir):
        need_root()
        self.dir = workdir / "full"
        self.dir.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(self.dir)],
                       check=True, capture_output=True)
        self.log = self.dir / "access.log"
        self.filler = self.dir / "filler"


@pytest.mark.pf_timeout(90)
def test_full_disk_block_refuses_within_send_timeout_and_resumes(daemon, workdir):
    disk = BigFullDisk(workdir)
    try:
        daemon.put("f", b"x" * 100)
        daemon.set("log", "access_log", str(disk.log))
        daemon.set("server", "send_timeout", "%ds" % SEND_TIMEOUT)
        daemon.start()
        assert daemon.get("f").name == "OK"
        wait_for(lambda: disk.log.exists() and disk.log.stat().st_size > 0, 10, "the first line")
        disk.fill()
        # long paths fill this user's share of the queue, short ones its
        # last room; each flooder stops at its first EBUSY
        flooders = [Flooder(daemon.sock, longs=16, fs=0), Flooder(daemon.sock, longs=0, fs=16)]
        for fl in flooders:
            fl.start()
            wait_for(lambda: stalled([fl], 0.3) or fl.busy or fl.error, 30,
                     "the flood to fill the access log's queue")
        wait_for(lambda: "access log: blocked: %s: %s;" % (disk.log, os.strerror(28))
                 in daemon.stderr(), 15, "the blocked message")
        # a new request now: refused within send_timeout, and closed (a
        # little room left is used first, and logged)
        r, took, served, closed = daemon.get_until_refused("f", 100)
        assert r.problems() == [], r.problems()
        assert (r.name, r.message) == ("EBUSY", LOG_BUSY), r
        print("refused after %.2f s (%d served first)" % (took, served))
        assert SEND_TIMEOUT - 0.1 <= took < SEND_TIMEOUT + 5, took
        assert closed
        for fl in flooders:
            fl.join(SEND_TIMEOUT + 20)
            assert not fl.is_alive(), "a flooder hangs"
            assert fl.busy == [LOG_BUSY] and fl.error is None, (fl.busy, fl.error)
        assert b"after" not in disk.log.read_bytes()
        # space again: logging resumes by itself, requests are served at once
        disk.free()
        wait_for(lambda: "access log: resumed: %s takes writes again" % disk.log
                 in daemon.stderr(), 15, "the resumed message")
        with daemon.conn(timeout=30) as c:
            t0 = time.monotonic()
            assert c.get("after").name == "ENOENT"
            assert time.monotonic() - t0 < 5
        wait_for(lambda: b'path="after"' in disk.log.read_bytes(), 15, "the line after")
        assert daemon.stop() == 0
        # every answer a client got has its line
        recs = [parse_log_line(l, "text") for l in disk.log.read_bytes().splitlines()]
        ok_f = [x for x in recs if (x["path"], x["status"]) == (b"f", "OK")]
        assert len(ok_f) == 1 + served + sum(fl.ok_f for fl in flooders), (len(ok_f), served)
        longs = [x for x in recs if x["path"] == LONG and x["status"] == "ENOENT"]
        assert len(longs) == flooders[0].answers - 1, (len(longs), flooders[0].answers)
        # what is lost is only what was never answered: the refusals and the
        # requests pipelined behind them (at most 15 per flooder), which
        # found the queue still full (design.md, "Access log")
        err = daemon.stderr()
        lost = drop_reports(err)
        assert all(why == "queue full" for _, why in lost), lost
        assert sum(n for n, _ in lost) <= 3 + 2 * 15, lost
        assert err.count("access log: blocked:") == 1 and err.count("access log: resumed:") == 1
    finally:
        if daemon.running():
            daemon.stop()
        disk.umount()

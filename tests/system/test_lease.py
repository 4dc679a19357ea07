"""A file its owner holds a lease on (fcntl F_SETLEASE): while the lease is
held, every GET or STAT of it is answered EBUSY at once, with a message that
says why, without an error-log line per request and without slowing
anything else down; once the lease is released the file is served again.
(Before: each request retried openat2 8 times, answered EIO and wrote an
error line, ~16,000 lines/s from one client.)"""

import json
import os
import subprocess
import time

import pytest

from conftest import (CHILD_ENV, PY, USER_A, USER_B, need, need_root,
                      parse_log_line, sha256, wait_for)

LEASE_MSG = "EBUSY: the file is leased or locked by another process; try again later"

# Runs as the file's owner: opens it for writing, takes a write lease (any
# open by another process conflicts with it), says "leased", holds it until
# a line arrives on stdin, releases it, says "released". Python's fcntl may
# lack the constants: F_SETLEASE is F_LINUX_SPECIFIC_BASE + 0.
HOLDER = r"""
import fcntl, os, signal, sys
F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)
# The kernel signals the holder (SIGIO) when someone wants the file; the
# default action would end the holder and its lease with it.
signal.signal(signal.SIGIO, signal.SIG_IGN)
signal.alarm(60)  # never outlive the test by much
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, F_SETLEASE, fcntl.F_WRLCK)
print("leased", flush=True)
sys.stdin.readline()
fcntl.fcntl(fd, F_SETLEASE, fcntl.F_UNLCK)
os.close(fd)
print("released", flush=True)
"""

FLOOD_CONNS = 2
FLOOD_EACH = 1000  # 2,000 requests for the leased file


def new_stderr(d, offset):
    return d.stderr_path.read_bytes()[offset:].decode(errors="replace")


@pytest.mark.pf_timeout(90)
def test_leased_file_is_ebusy_at_once_and_not_logged(daemon, runner, workdir):
    need_root()
    daemon.put("leased", b"held by A\n", mode=0o600, uid=USER_A.uid, gid=USER_A.gid)
    other = os.urandom(20000)
    daemon.put("other", other, mode=0o644)
    daemon.start()
    sock = daemon.sock
    leased_path = str(daemon.root / "leased")

    holder = subprocess.Popen(USER_A.setpriv() + [PY, "-I", "-c", HOLDER, leased_path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=CHILD_ENV, cwd=str(workdir))
    runner.procs.append(holder)
    line = holder.stdout.readline()
    if line != b"leased\n":
        holder.kill()
        need(False, "cannot take a file lease here (fs.leases-enable?): %r" %
             holder.stderr.read()[-300:])

    # One request of each kind, to see the message.
    got = runner.pfp(USER_A, sock, "get", "leased")
    assert [(r["name"], r["message"]) for r in got] == [("EBUSY", LEASE_MSG)], got
    got = runner.pfp(USER_A, sock, "stat", "leased")
    assert [(r["name"], r["message"]) for r in got] == [("EBUSY", LEASE_MSG)], got

    # The flood, as the owner (whose file it is), while another user is
    # served a different file as usual.
    spec_l = workdir / "spec_leased.json"
    spec_o = workdir / "spec_other.json"
    spec_l.write_text(json.dumps([{"path": "leased", "status": "EBUSY"}]))
    spec_o.write_text(json.dumps([{"path": "other", "status": "OK",
                                   "sha256": sha256(other), "size": len(other)}]))
    for p in (spec_l, spec_o):
        os.chmod(p, 0o644)
    err_at = daemon.stderr_path.stat().st_size
    t0 = time.monotonic()
    flood = runner.popen_pfp(USER_A, sock, "load", "--spec", "@%s" % spec_l,
                             "--conns", FLOOD_CONNS, "--requests", FLOOD_EACH,
                             "--pipeline", 8)
    bystander = runner.popen_pfp(USER_B, sock, "load", "--spec", "@%s" % spec_o,
                                 "--conns", 1, "--requests", 300)
    res = {}
    for who, p in (("flood", flood), ("bystander", bystander)):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        res[who] = json.loads(out.decode().strip().splitlines()[-1])
    took = time.monotonic() - t0
    print("lease flood: %r in %.2fs; bystander %r" % (res["flood"], took, res["bystander"]))
    f = res["flood"]
    assert (f["ok"], f["mismatch"], f["errors"]) == (FLOOD_CONNS * FLOOD_EACH, 0, 0), f
    b = res["bystander"]
    assert (b["ok"], b["mismatch"], b["errors"]) == (300, 0, 0), b
    assert took < 10, "2,000 EBUSY answers took %.1fs" % took
    assert holder.poll() is None, "the holder (and its lease) went away mid-test"

    # No error line per request: at most a handful in all.
    lines = new_stderr(daemon, err_at).splitlines()
    assert len(lines) <= 3, "%d stderr lines during the flood, e.g. %r" % (len(lines), lines[:5])

    # Every request still has its access-log line, with its status.
    def ebusy_lines():
        n = 0
        for l in daemon.log_lines():
            r = parse_log_line(l, "text")
            if r["path"] == b"leased" and r["status"] == "EBUSY":
                n += 1
        return n
    want = FLOOD_CONNS * FLOOD_EACH + 2
    wait_for(lambda: ebusy_lines() >= want, 20, "%d EBUSY lines in the access log" % want)

    # Released: served again.
    holder.stdin.write(b"go\n")
    holder.stdin.flush()
    assert holder.stdout.readline() == b"released\n"
    assert holder.wait(timeout=10) == 0
    got = runner.pfp(USER_A, sock, "get", "leased")
    assert [(r["name"], r["received"]) for r in got] == [("OK", 10)], got
    assert got[0]["sha256"] == sha256(b"held by A\n")
    assert daemon.stop() == 0

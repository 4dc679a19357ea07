"""Fault injection: file-descriptor exhaustion (issue 11, item 3).

Two ways to run out. (1) The daemon starts under a low RLIMIT_NOFILE: it
lowers max_connections to what the limit carries, so connections past it
get EBUSY naming the limit and are closed, without a busy loop, and a new
client is served as soon as one leaves. (2) The limit is lowered under the
running daemon (prlimit --pid) below what it holds open: accept4() fails
with EMFILE; the daemon pauses accepting (endpoint_linux.c) instead of
spinning on the ready socket, says so once on the error log, new clients
wait in the listen backlog, and are served as soon as descriptors are back.
(The proportions of the lowered limits: test_resources.py.)"""

import os
import shutil
import subprocess
import threading
import time

import pytest

import pfp
from conftest import need, wait_for
from test_resources import busy_message, fds, low_fd_limit, served_at_most

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """User + system CPU seconds of the whole process, all threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def cpu_over(pid, seconds):
    c0 = cpu_s(pid)
    time.sleep(seconds)
    return cpu_s(pid) - c0


@pytest.mark.pf_timeout(60)
def test_low_descriptor_limit_refuses_cleanly_no_busy_loop_and_resumes(daemon, workdir):
    need(shutil.which("prlimit"), "needs prlimit (util-linux)")
    daemon.put("f", b"x")
    daemon.set("server", "max_connections_per_user", "0")  # all are root's
    low_fd_limit(daemon, workdir, 64)
    daemon.start()
    pid = daemon.proc.pid
    n, _ = served_at_most(daemon)
    held = []
    try:
        for _ in range(n):
            held.append(daemon.conn())
            assert held[-1].stat("f").name == "OK"
        # saturated: the next ones are told why, and closed
        for _ in range(20):
            assert busy_message(daemon) == "EBUSY: connection limit (%d) reached" % n
        # no busy loop while saturated, with the held clients idle
        used = cpu_over(pid, 2.0)
        print("limit 64: %d connections; CPU %.2f s in 2 s saturated" % (n, used))
        assert used < 0.2, "%.2f s of CPU in 2 s while saturated" % used
        assert held[0].get("f").body == b"x"  # the held ones are still served
        held.pop().close()
        wait_for(lambda: connect_served(daemon), 10, "a new client served after one left")
    finally:
        for c in held:
            c.close()
    assert daemon.stop() == 0


def connect_served(daemon):
    with daemon.conn(timeout=5) as c:
        try:
            c.send(pfp.stat_request("f"))
        except (BrokenPipeError, ConnectionResetError):
            return False  # EBUSY came first: the close is not seen yet
        return c.read_response().name == "OK"


def set_nofile(pid, soft):
    """Set the daemon's soft RLIMIT_NOFILE (None: back to the hard one).
    The hard limit stays: raising it again would need CAP_SYS_RESOURCE."""
    if soft is None:
        soft = subprocess.run(["prlimit", "--pid", str(pid), "--nofile", "-o", "HARD",
                               "--noheadings"], check=True, capture_output=True,
                              timeout=10).stdout.split()[0].decode()
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%s:" % soft], check=True,
                   capture_output=True, timeout=10)


def no_descriptor_left(pid):
    """Lower the daemon's soft limit to its lowest free descriptor number,
    again until that holds still (a descriptor the daemon closes a moment
    later, the file of an answer just sent, opens a hole below it)."""
    while True:
        n = lowest_free_fd(pid)
        set_nofile(pid, n)
        time.sleep(0.2)
        if lowest_free_fd(pid) >= n:
            return n


def lowest_free_fd(pid):
    """The descriptor number the next open would get: a limit of that many
    leaves none (the limit is on numbers, and the open ones may have holes)."""
    used = {int(x) for x in os.listdir("/proc/%d/fd" % pid)}
    n = 0
    while n in used:
        n += 1
    return n


@pytest.mark.pf_timeout(60)
def test_descriptors_gone_under_a_running_daemon(daemon):
    need(shutil.which("prlimit"), "needs prlimit (util-linux)")
    daemon.put("f", b"x")
    daemon.start()
    pid = daemon.proc.pid
    assert daemon.get("f").body == b"x"
    held = daemon.conn()
    assert held.stat("f").name == "OK"
    no_descriptor_left(pid)
    waiting, results = [], []
    try:
        # new clients: connect() succeeds (the kernel queues them in the
        # backlog) and they wait; none is accepted and dropped unanswered
        def client():
            try:
                with pfp.Conn(daemon.sock, timeout=30) as c:
                    results.append(c.get("f").body)
            except (OSError, pfp.ProtocolError) as e:
                results.append(e)
        for _ in range(5):
            t = threading.Thread(target=client, daemon=True)
            t.start()
            waiting.append(t)
        wait_for(lambda: "accept: Too many open files; pausing accepts" in daemon.stderr(), 10,
                 "the error log to say accepts are paused")
        used = cpu_over(pid, 2.0)
        print("EMFILE: CPU %.2f s in 2 s with 5 clients waiting" % used)
        assert used < 0.2, "%.2f s of CPU in 2 s out of descriptors: a busy loop" % used
        assert results == [], results
        assert daemon.stderr().count("pausing accepts") == 1, daemon.stderr()
        # descriptors back: the waiting clients are served
        set_nofile(pid, None)
        for t in waiting:
            t.join(15)
        assert results == [b"x"] * 5, results
        assert held.get("f").body == b"x"
    finally:
        held.close()
        set_nofile(pid, None)
    assert daemon.get("f").body == b"x"
    assert daemon.stop() == 0
    statuses = [l.split(b" status=")[1].split(b" ")[0] for l in daemon.log_lines()]
    assert statuses == [b"OK"] * len(statuses) and len(statuses) == 1 + 1 + 5 + 1 + 1


@pytest.mark.pf_timeout(30)
def test_no_descriptor_for_the_file_is_ebusy_not_eio(daemon):
    """A connection already open asks for a file while the daemon has no
    descriptor left to open it: a refusal that says try again (EBUSY), not
    a disk error; the connection stays usable."""
    need(shutil.which("prlimit"), "needs prlimit (util-linux)")
    daemon.put("f", b"x")
    daemon.start()
    pid = daemon.proc.pid
    with daemon.conn() as held:
        assert held.stat("f").name == "OK"
        no_descriptor_left(pid)
        try:
            r = held.get("f")
        finally:
            set_nofile(pid, None)
        assert r.problems() == [], r.problems()
        assert r.name == "EBUSY", r
        assert held.get("f").body == b"x"
    assert daemon.stop() == 0

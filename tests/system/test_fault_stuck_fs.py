"""A file system that stops answering (issue 11, fault injection): a FUSE
mount inside the root (stuckfs.py) whose server holds every getattr, open
and read of one file. Requests for that file hang; every other user's
request for every other file is still served, because a worker that has
been inside one file-system call for over 1 s gets no new connections; the
error log names the path once per stall; the worker takes connections again
when the call returns; with every worker stuck, new clients get EBUSY at
once; SIGTERM with a worker stuck for good still ends the daemon within
shutdown_timeout + 2 s, with the stuck request's access-log line
(ABANDONED) and every other line written."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import (PY, USER_A, USER_B, need, need_root, parse_log_line,
                      wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
SHUTDOWN_S = 2
GRACE_S = 2  # daemon.c WORKER_JOIN_GRACE_MS


def fuse_ready():
    need_root()
    need(os.path.exists("/dev/fuse"), "needs /dev/fuse")
    try:
        subprocess.run([PY, "-c", "import fuse"], check=True, capture_output=True,
                       timeout=30)
    except (subprocess.CalledProcessError, OSError):
        need(False, "needs python3-fuse (the fuse module for %s)" % PY)


class StuckFS:
    """stuckfs.py mounted at mnt; commands go to its stdin."""

    def __init__(self, mnt):
        self.mnt = mnt
        os.makedirs(mnt, exist_ok=True)
        self.proc = subprocess.Popen([PY, os.path.join(HERE, "stuckfs.py"), mnt],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        wait_for(lambda: os.path.ismount(mnt) or self.proc.poll() is not None, 20,
                 "the FUSE mount")
        assert self.proc.poll() is None, self.proc.stderr.read().decode(errors="replace")

    def command(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == b"ok\n"

    def close(self):
        # Killing the server aborts the connection: a held call fails in
        # the kernel (ENOTCONN) instead of waiting on.
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        subprocess.run(["umount", "-l", self.mnt], capture_output=True, timeout=30)


@pytest.fixture
def stuckfs(daemon):
    fuse_ready()
    fs = StuckFS(str(daemon.root / "stuck"))
    yield fs
    fs.close()


def err_since(daemon, offset):
    return daemon.stderr_path.read_bytes()[offset:].decode(errors="replace")


def log_records(daemon):
    return [parse_log_line(l, "text") for l in daemon.log_lines()]


def get(runner, user, daemon, path, timeout=5):
    """GET path as user; returns pfp.py's one answer."""
    out = runner.pfp(user, daemon.sock, "get", path, "--timeout", 10, timeout=timeout)
    assert len(out) == 1, out
    return out[0]


def stuck_lines(text):
    return re.findall(r'worker (\d+): stuck for over 1 s in open of "stuck/hang"', text)


@pytest.mark.pf_timeout(40)
def test_stuck_file_system_holds_one_worker_not_the_others(daemon, stuckfs, runner):
    daemon.put("a.txt", b"alice's file\n", mode=0o600, uid=USER_A.uid, gid=USER_A.gid)
    daemon.put("b.txt", b"bob's file\n", mode=0o600, uid=USER_B.uid, gid=USER_B.gid)
    daemon.set("server", "workers", 2)
    daemon.set("server", "shutdown_timeout", "%ds" % SHUTDOWN_S)
    # Under `make asan`: LeakSanitizer's check at exit first stops every
    # thread with ptrace, and a thread in a FUSE call nobody answers cannot
    # be stopped, so the check would wait for the call that the daemon
    # itself no longer waits for. Leaks are checked by every other test.
    daemon.env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                      ":detect_leaks=0")
    daemon.start()
    off = daemon.err_offset
    requests = 0

    # The FUSE mount answers, before it is told to hold.
    assert get(runner, USER_A, daemon, "stuck/ok")["name"] == "OK"
    requests += 1

    # One stuck request: its worker is named once, with the path.
    stuckfs.command("hold open")
    hung_a = runner.popen_pfp(USER_A, daemon.sock, "get", "stuck/hang", "--timeout", 60)
    requests += 1
    wait_for(lambda: stuck_lines(err_since(daemon, off)), 5, "the stuck line")
    first = stuck_lines(err_since(daemon, off))[0]

    # Meanwhile other users' files are served at once, each by the other
    # worker; real permissions still apply.
    for _ in range(2):
        t0 = time.monotonic()
        r = get(runner, USER_B, daemon, "b.txt")
        assert r["name"] == "OK" and r["received"] == len(b"bob's file\n"), r
        assert time.monotonic() - t0 < 3
        assert get(runner, USER_A, daemon, "a.txt")["name"] == "OK"
        assert get(runner, USER_A, daemon, "b.txt")["name"] == "EACCES"
        assert get(runner, USER_B, daemon, "stuck/ok")["name"] == "OK"
        requests += 4
    assert hung_a.poll() is None  # still hanging
    time.sleep(1.5)
    assert len(stuck_lines(err_since(daemon, off))) == 1, err_since(daemon, off)
    served = [r for r in log_records(daemon) if r["path"] in (b"a.txt", b"b.txt")]
    assert len(served) == 6 and all(str(r["worker"]) != first for r in served), served

    # Both workers stuck: a new client is refused at once, and told why.
    hung_b = runner.popen_pfp(USER_B, daemon.sock, "get", "stuck/hang", "--timeout", 60)
    requests += 1
    wait_for(lambda: len(stuck_lines(err_since(daemon, off))) == 2, 5, "the second stuck line")
    assert sorted(stuck_lines(err_since(daemon, off))) == ["1", "2"]
    t0 = time.monotonic()
    with daemon.conn() as c:  # answered at accept, before it could write
        r = c.read_header()
    assert r.name == "EBUSY" and "file system that does not answer" in r.message, r
    assert time.monotonic() - t0 < 3
    requests += 1
    assert "every worker is stuck" in err_since(daemon, off)

    # Released: both stuck requests complete, both workers say they are
    # back and take connections again.
    stuckfs.command("release")
    for p in (hung_a, hung_b):
        out, _ = p.communicate(timeout=10)
        res = json.loads(out.decode().splitlines()[0])
        assert res["name"] == "OK" and res["received"] == len(b"answered at last\n"), res
    wait_for(lambda: len(re.findall(r'worker \d+: back after \d+ ms in open of "stuck/hang"',
                                    err_since(daemon, off))) == 2, 5, "the back lines")
    # The two released requests' lines are written asynchronously: count
    # from after them.
    wait_for(lambda: len([r for r in log_records(daemon) if r["path"] == b"stuck/hang"
                          and r["status"] == "OK"]) == 2, 5, "the released requests' lines")
    before = len(daemon.log_lines())
    for _ in range(3):
        assert get(runner, USER_B, daemon, "b.txt")["name"] == "OK"
        requests += 1
    wait_for(lambda: len(daemon.log_lines()) == before + 3, 5, "the lines")
    assert {r["worker"] for r in log_records(daemon)[before:]} == {1, 2}

    # SIGTERM while one worker is stuck for good: the daemon is done within
    # shutdown_timeout + the grace, the stuck request is logged ABANDONED,
    # and no other line is lost.
    stuckfs.command("hold open")
    hung_c = runner.popen_pfp(USER_A, daemon.sock, "get", "stuck/hang", "--timeout", 60)
    requests += 1
    wait_for(lambda: len(stuck_lines(err_since(daemon, off))) == 3, 5, "the third stuck line")
    assert get(runner, USER_B, daemon, "b.txt")["name"] == "OK"
    requests += 1
    t0 = time.monotonic()
    daemon.kill(signal.SIGTERM)

    def done():
        # The thread stuck in the FUSE call cannot be ended by anyone (the
        # kernel waits for the server's answer), so the process is reaped
        # only once it returns; the daemon itself has exited: its main
        # thread is a zombie, or the process is gone.
        try:
            with open("/proc/%d/stat" % daemon.proc.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True
    wait_for(done, SHUTDOWN_S + GRACE_S + 3, "the daemon to exit")
    took = time.monotonic() - t0
    assert took <= SHUTDOWN_S + GRACE_S + 1.5, took
    err = err_since(daemon, off)
    assert re.search(r'worker \d+: still in open of "stuck/hang" after \d+ ms; exiting without it',
                     err), err
    assert "stopped" in err.splitlines()[-1], err
    stuckfs.command("release")
    daemon.stopped_rc = daemon.wait_exit(10)
    assert daemon.stopped_rc == 0
    hung_c.communicate(timeout=10)

    recs = log_records(daemon)
    assert len(recs) == requests, (len(recs), requests)
    hang = [r for r in recs if r["path"] == b"stuck/hang"]
    assert [r["status"] for r in hang] == ["OK", "OK", "ABANDONED"], hang
    assert hang[-1]["uid"] == USER_A.uid and hang[-1]["bytes"] == 0


@pytest.mark.pf_timeout(40)
def test_stuck_in_a_read_of_the_body(daemon, stuckfs, runner):
    """The open and fstat answer, the read of the body does not: the stall is
    named as a read of the resolved path, other users are served, and the
    body arrives whole once the server answers."""
    daemon.put("b.txt", b"bob's file\n", mode=0o600, uid=USER_B.uid, gid=USER_B.gid)
    daemon.set("server", "workers", 2)
    daemon.start()
    off = daemon.err_offset
    stuckfs.command("hold read")
    hung = runner.popen_pfp(USER_A, daemon.sock, "get", "/stuck/./hang", "--timeout", 60)
    line = r'worker (\d+): stuck for over 1 s in read of "stuck/hang"'
    wait_for(lambda: re.search(line, err_since(daemon, off)), 5, "the stuck line")
    stuck = int(re.search(line, err_since(daemon, off)).group(1))
    for _ in range(3):
        assert get(runner, USER_B, daemon, "b.txt")["name"] == "OK"
    assert hung.poll() is None
    stuckfs.command("release")
    out, _ = hung.communicate(timeout=10)
    res = json.loads(out.decode().splitlines()[0])
    assert res["name"] == "OK" and res["received"] == len(b"answered at last\n"), res
    wait_for(lambda: "worker %d: back after" % stuck in err_since(daemon, off), 5,
             "the back line")
    wait_for(lambda: len(daemon.log_lines()) == 4, 5, "the lines")
    recs = log_records(daemon)
    assert all(r["worker"] != stuck for r in recs if r["path"] == b"b.txt"), recs
    assert [(r["status"], r["resolved"]) for r in recs if r["path"] == b"/stuck/./hang"] == \
        [("OK", b"stuck/hang")]
    assert len(re.findall(line, err_since(daemon, off))) == 1

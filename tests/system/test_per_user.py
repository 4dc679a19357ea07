"""The per-user connection limit: one uid holding max_connections_per_user
connections gets EBUSY naming that limit for the next one (logged), while
other users are still served; unset it is a quarter of max_connections; 0
turns it off (then only the global limit, named as such, applies); a reload
changes it for new connections."""

import json
import os
import select
import signal
import subprocess
import time

import pytest

from conftest import CHILD_ENV, PY, USER_A, USER_B, USER_C, User, need_root, wait_for
from test_disconnect import log_records

HOLDER = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import pfp

sock, n, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
held = []


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def one():
    """A new connection and the answer to a STAT on it: EBUSY comes without
    asking, so a failed send is no error."""
    c = pfp.Conn(sock, 10)
    try:
        c.send(pfp.stat_request(path))
    except OSError:
        pass
    try:
        r = c.read_response()
    except (pfp.ProtocolError, OSError) as e:
        c.close()
        return {"error": str(e)}
    if r.name == "OK":
        held.append(c)
    else:
        c.close()
    return {"name": r.name, "message": r.message}


for _ in range(n):
    emit(one())
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "one":
        emit(one())
    elif cmd == "check":
        emit({"names": [c.stat(path).name for c in held]})
    elif cmd == "drop":
        held.pop().close()
        emit({"held": len(held)})
'''


class Holder:
    """A process as `user` that holds connections to the daemon, each
    served a STAT of `path` (so each was accepted and handed to a worker)."""

    def __init__(self, runner, workdir, user, sock, n, path="f"):
        script = workdir / "holder.py"
        if not script.exists():
            script.write_text(HOLDER)
            os.chmod(script, 0o644)
        argv = user.setpriv() + [PY, "-I", str(script), str(runner.tools), str(sock),
                                 str(n), path]
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, cwd=str(runner.tools),
                                  env=CHILD_ENV)
        runner.procs.append(self.p)
        self.busy = 0  # EBUSY answers so far
        self.pending = b""  # bytes read from the holder, not yet a line
        self.first = [self.read() for _ in range(n)]

    def read(self, timeout=20):
        # Lines are split here from raw reads: a buffered readline() could
        # hold a second line where select() cannot see it.
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            r, _, _ = select.select([fd], [], [], max(left, 0))
            assert r, "no answer from the holder within %ss" % timeout
            chunk = os.read(fd, 65536)
            assert chunk, "holder exited: %r" % self.p.stderr.read()
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        obj = json.loads(line)
        self.busy += obj.get("name") == "EBUSY"
        return obj

    def ask(self, cmd):
        self.p.stdin.write(cmd.encode() + b"\n")
        self.p.stdin.flush()
        return self.read()

    def one(self):
        return self.ask("one")

    def close(self):
        self.p.stdin.close()
        assert self.p.wait(timeout=10) == 0, self.p.stderr.read()


def per_user_busy(n):
    return {"name": "EBUSY", "message": "EBUSY: per-user connection limit (%d) reached" % n}


OK = {"name": "OK", "message": ""}


def reload(daemon):
    before = daemon.stderr().count("reloaded")
    daemon.write_ini()
    daemon.kill(signal.SIGHUP)
    wait_for(lambda: daemon.stderr().count("reloaded") > before, 10, "the reload")


@pytest.mark.pf_timeout(90)
def test_one_user_holding_its_share_does_not_lock_out_others(daemon, runner, workdir):
    need_root()
    daemon.put("f", b"data")
    daemon.set("server", "max_connections", "8")
    daemon.set("server", "max_connections_per_user", "3")
    daemon.start()
    a = Holder(runner, workdir, USER_A, daemon.sock, 3)
    assert a.first == [OK] * 3
    # A's fourth, and any after it, are refused, naming the limit
    assert a.one() == per_user_busy(3)
    assert a.one() == per_user_busy(3)
    # B is served meanwhile, up to its own share
    b = Holder(runner, workdir, USER_B, daemon.sock, 3)
    assert b.first == [OK] * 3
    assert b.one() == per_user_busy(3)
    # and so is root (the test's own uid), with the global limit not reached
    assert daemon.stat("f").name == "OK"
    # A's connections were never disturbed
    assert a.ask("check") == {"names": ["OK"] * 3}
    # when A closes one, A gets one back
    assert a.ask("drop") == {"held": 2}
    wait_for(lambda: a.one() == OK, 10, "A to be served again after closing one")
    assert a.one() == per_user_busy(3)
    a.close()
    b.close()
    assert daemon.stop() == 0
    busy = [x for x in log_records(daemon) if x["status"] == "EBUSY"]
    assert sorted(x["uid"] for x in busy) == [USER_A.uid] * a.busy + [USER_B.uid], busy
    assert all((x["worker"], x["op"]) == (0, "-") for x in busy), busy


@pytest.mark.pf_timeout(90)
def test_users_at_their_limit_leave_the_last_places_to_others(daemon, runner, workdir):
    """Four users at a quarter each would hold every place; the last eighth
    is kept for users holding fewer than 1/64 of them."""
    need_root()
    daemon.put("f", b"data")
    daemon.set("server", "max_connections", "16")  # a quarter: 4 per user
    daemon.start()
    heavy = [Holder(runner, workdir, u, daemon.sock, 4) for u in (USER_A, USER_B, USER_C)]
    for h in heavy:
        assert h.first == [OK] * 4
    # A fourth user gets places until only 16/8 = 2 are left ...
    d = Holder(runner, workdir, User(61004, 61004, (), "D"), daemon.sock, 2)
    assert d.first == [OK] * 2
    # ... and no more, although below its own limit of 4
    assert d.one() == per_user_busy(4)
    # while users with no connection still get the last two
    light = [Holder(runner, workdir, User(uid, uid, (), "E"), daemon.sock, 1)
             for uid in (61005, 61006)]
    assert [x.first for x in light] == [[OK], [OK]]
    # and now it is full for everyone
    assert daemon.conn(timeout=5).read_response().name == "EBUSY"
    for h in heavy + [d] + light:
        h.close()


@pytest.mark.pf_timeout(90)
def test_default_is_a_quarter_of_max_connections(daemon, runner, workdir):
    need_root()
    daemon.put("f", b"data")
    daemon.set("server", "max_connections", "8")
    daemon.start()
    a = Holder(runner, workdir, USER_A, daemon.sock, 2)
    assert a.first == [OK] * 2
    assert a.one() == per_user_busy(2)
    b = Holder(runner, workdir, USER_B, daemon.sock, 2)
    assert b.first == [OK] * 2
    a.close()
    b.close()


@pytest.mark.pf_timeout(90)
def test_zero_turns_the_per_user_limit_off(daemon, runner, workdir):
    need_root()
    daemon.put("f", b"data")
    daemon.set("server", "max_connections", "4")
    daemon.set("server", "max_connections_per_user", "0")
    daemon.start()
    # one user may take every connection; past that the global limit speaks
    a = Holder(runner, workdir, USER_A, daemon.sock, 4)
    assert a.first == [OK] * 4
    busy = {"name": "EBUSY", "message": "EBUSY: connection limit (4) reached"}
    assert a.one() == busy
    b = Holder(runner, workdir, USER_B, daemon.sock, 1)
    assert b.first == [busy]
    a.close()
    b.close()


@pytest.mark.pf_timeout(90)
def test_reload_changes_the_per_user_limit(daemon, runner, workdir):
    need_root()
    daemon.put("f", b"data")
    daemon.set("server", "max_connections", "8")
    daemon.set("server", "max_connections_per_user", "2")
    daemon.start()
    a = Holder(runner, workdir, USER_A, daemon.sock, 2)
    assert a.first == [OK] * 2
    assert a.one() == per_user_busy(2)
    daemon.set("server", "max_connections_per_user", "3")
    reload(daemon)
    assert a.one() == OK
    assert a.one() == per_user_busy(3)
    # lowered below what A holds: A keeps its connections, gets no new one
    daemon.set("server", "max_connections_per_user", "1")
    reload(daemon)
    assert a.one() == per_user_busy(1)
    assert a.ask("check") == {"names": ["OK"] * 3}
    # unset again, it follows max_connections (8 / 4)
    daemon.unset("server", "max_connections_per_user")
    reload(daemon)
    assert a.one() == per_user_busy(2)
    a.close()

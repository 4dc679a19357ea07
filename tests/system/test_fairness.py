"""One user's expensive requests cannot starve another user. User A keeps
64 connections full of pipelined STATs through a 40-link chain of ~4 KiB
"a/../a/../..." symlink targets in its own directory (each request costs the
kernel milliseconds of path walking); meanwhile user B's GET of a small file
is answered within a few seconds, and the attacker is still being served.

(Before: a connection's turn was 16 requests whatever they cost, so each
worker spent seconds on the attacker's connections between two looks at
anyone else, and B waited for many seconds; see the security review's F1.)"""

import os
import signal
import subprocess
import time

import pytest

from conftest import CHILD_ENV, PY, USER_A, USER_B, need_root

LINKS = 40       # the kernel's limit on symlinks followed in one lookup
TARGET = 4000    # bytes of each link's target
CONNS = 64       # attacker connections (well under the per-user limit)
PIPELINE = 32    # requests each keeps in flight
VICTIM_GETS = 3  # fresh connections, one after another
BOUND_S = 3.0    # generous: a few ms of work per attacker connection turn
VICTIM_WAIT_S = 8.0  # the victim gives up after this (the old code's fate)

# Runs as A: CONNS connections, each keeping PIPELINE STATs of argv[2] in
# flight; prints "go" once every connection has had answers, then goes on
# until SIGTERM (or 60 s) and prints how many answers it got.
ATTACKER = r"""
import selectors, signal, socket, struct, sys, time
sock, path, conns, pipe = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
signal.alarm(60)
REQ = b"PF" + bytes([1, 2]) + struct.pack(">HQQ", len(path), 0, 0) + path
sel = selectors.DefaultSelector()
state = {}
for i in range(conns):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.setblocking(False)
    state[s] = [REQ * pipe, b"", 0]  # to send, received, answers
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
said = False
while not stop:
    for key, ev in sel.select(0.2):
        s = key.fileobj
        st = state[s]
        if ev & selectors.EVENT_READ:
            d = s.recv(65536)
            if not d:
                sys.exit("connection closed by the server")
            st[1] += d
            # An answer: 32-byte header, message, body (STAT: none).
            while len(st[1]) >= 32:
                ml = struct.unpack(">H", st[1][4:6])[0]
                bl = struct.unpack(">Q", st[1][24:32])[0]
                if len(st[1]) < 32 + ml + bl:
                    break
                # OK, or EXDEV when a rename anywhere on the system sent
                # the lookup to the userspace walk, which gives up on
                # this much work.
                assert st[1][3] in (0, 4), st[1][:32 + ml]
                st[1] = st[1][32 + ml + bl:]
                st[2] += 1
                st[0] += REQ
        if ev & selectors.EVENT_WRITE and st[0]:
            try:
                n = s.send(st[0])
                st[0] = st[0][n:]
            except BlockingIOError:
                pass
    if not said and all(st[2] > 0 for st in state.values()):
        print("go", flush=True)
        said = True
print(sum(st[2] for st in state.values()), flush=True)
"""

# Runs as B: GETs argv[2] on a fresh connection argv[3] times, one after
# another, printing the seconds each took; gives up after argv[4] s.
VICTIM = r"""
import signal, socket, struct, sys, time
sock, path, n, limit = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), float(sys.argv[4])
REQ = b"PF" + bytes([1, 1]) + struct.pack(">HQQ", len(path), 0, 0) + path
for i in range(n):
    t0 = time.monotonic()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(limit)
    try:
        s.connect(sock)
        s.sendall(REQ)
        b = b""
        while len(b) < 32 or len(b) < 32 + struct.unpack(">H", b[4:6])[0] + struct.unpack(">Q", b[24:32])[0]:
            d = s.recv(65536)
            if not d:
                sys.exit("closed")
            b += d
    except socket.timeout:
        print("timeout", flush=True)
        sys.exit(0)
    assert b[3] == 0 and b.endswith(b"hello\n"), b[:40]
    print("%.3f" % (time.monotonic() - t0), flush=True)
    s.close()
"""


def make_chain(daemon, user):
    """root/u/<A>/chain/l0 -> ... -> l39 -> target, each target ~4 KiB of
    "a/../" before the next link's name; all of it the user's own."""
    base = daemon.mkdir("u/%d/chain/a" % user.uid, uid=user.uid, gid=user.gid).parent
    for d in (base, base.parent):
        os.chown(d, user.uid, user.gid)
    for i in range(LINKS):
        tail = "l%d" % (i + 1) if i + 1 < LINKS else "target"
        p = base / ("l%d" % i)
        os.symlink("a/../" * ((TARGET - len(tail)) // 5) + tail, p)
        os.lchown(p, user.uid, user.gid)
    daemon.put("u/%d/chain/target" % user.uid, b"x\n", uid=user.uid, gid=user.gid)
    return "u/%d/chain/l0" % user.uid


@pytest.mark.pf_timeout(60)
def test_expensive_pipelines_do_not_starve_another_user(daemon, runner, workdir):
    need_root()
    chain = make_chain(daemon, USER_A)
    daemon.put("pub/small", b"hello\n")
    daemon.set("server", "workers", 2)
    daemon.start()

    attacker = subprocess.Popen(
        USER_A.setpriv() + [PY, "-I", "-c", ATTACKER, str(daemon.sock), chain,
                            str(CONNS), str(PIPELINE)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=CHILD_ENV, cwd=str(workdir))
    runner.procs.append(attacker)
    assert attacker.stdout.readline() == b"go\n", attacker.stderr.read()
    time.sleep(0.5)  # every connection's pipeline full

    victim = subprocess.run(
        USER_B.setpriv() + [PY, "-I", "-c", VICTIM, str(daemon.sock), "pub/small",
                            str(VICTIM_GETS), str(VICTIM_WAIT_S)],
        stdin=subprocess.DEVNULL, capture_output=True, env=CHILD_ENV,
        cwd=str(workdir), timeout=VICTIM_GETS * VICTIM_WAIT_S + 30)
    assert victim.returncode == 0, victim.stderr
    waits = victim.stdout.decode().split()

    # The attack ran all along, and was served too.
    assert attacker.poll() is None, attacker.stderr.read()
    attacker.send_signal(signal.SIGTERM)
    out, err = attacker.communicate(timeout=30)
    assert attacker.returncode == 0, err
    answers = int(out.decode().split()[-1])
    print("victim waits %r; attacker answers %d" % (waits, answers))
    assert answers > CONNS, answers

    assert "timeout" not in waits, waits
    assert len(waits) == VICTIM_GETS and max(float(w) for w in waits) < BOUND_S, waits
    assert daemon.stop() == 0

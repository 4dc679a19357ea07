"""The error log on a stderr that is a socket nobody reads (a stalled
journal under a service manager) never stalls the daemon: messages that do
not fit are dropped, and accepting, reloading and stopping go on."""

import os
import signal
import socket
import subprocess
import time

import pytest

import pfp
from conftest import listening, wait_for


@pytest.mark.pf_timeout(90)
def test_stalled_stderr_socket_does_not_stall(workdir, tools):
    root = workdir / "root"
    root.mkdir()
    os.chmod(root, 0o755)
    (root / "f").write_bytes(b"hello\n")
    sock = workdir / "pf.sock"
    ini = workdir / "pipefiled.ini"
    ini.write_text("[server]\nsocket = %s\nroot = %s\nworkers = 2\n"
                   "[identity]\nserve_root_clients = yes\n"
                   "[log]\naccess_log = %s\nlevel = info\n"
                   % (sock, root, workdir / "access.log"))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # The smallest send buffer the kernel allows: a few dozen lines fill it.
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    p = subprocess.Popen([str(tools / "pipefiled"), "-c", str(ini)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=theirs.fileno())
    theirs.close()
    try:
        wait_for(lambda: listening(sock), 10, "pipefiled to listen")
        # Every SIGHUP logs "reloaded ..." on stderr, which nobody reads.
        for _ in range(400):
            os.kill(p.pid, signal.SIGHUP)
            time.sleep(0.002)
        # The socket is full now: it holds a handful of the 400 lines (the
        # error log's rate limit lets 10 of them through) ...
        wait_for(lambda: ours.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                 .count(b"\n") >= 2, 30, "stderr to take some lines")
        time.sleep(0.2)
        held = ours.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        assert held.count(b"reloaded") < 100, "stderr was not full: %d lines" % held.count(b"\n")
        # ... and the daemon still answers at once, and still reloads: a
        # reload that denies root clients takes effect.
        for _ in range(20):
            t0 = time.monotonic()
            with pfp.connect(str(sock), timeout=5) as c:
                assert c.get("f").body == b"hello\n"
            assert time.monotonic() - t0 < 2.0
        ini.write_text(ini.read_text().replace("serve_root_clients = yes",
                                               "serve_root_clients = no"))
        os.kill(p.pid, signal.SIGHUP)

        tries = []

        def denied():
            tries.append(1)
            with pfp.connect(str(sock), timeout=5) as c:
                return c.get("f").name == "EPERM"
        wait_for(denied, 10, "the reload to take effect")
        # And it stops promptly, with nothing read from stderr.
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
        assert time.monotonic() - t0 < 10
        assert not sock.exists()
        # What reached stderr is whole lines, each a message of its own,
        # and far fewer than were logged: the rest was dropped, not waited on.
        ours.settimeout(5)
        got = b""
        while True:
            chunk = ours.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        assert got.endswith(b"\n")
        assert all(l.startswith(b"pipefiled: ") for l in got.splitlines()), got[:500]
        assert got.count(b"reloaded") < 100
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        ours.close()
    # The access log (a file) lost nothing: one line per request.
    assert (workdir / "access.log").read_bytes().count(b"\n") == 20 + len(tries)

"""[server] send_buffer: the send buffer asked of the kernel for a
connection about to send a large body (SO_SNDBUF; the kernel doubles it and
caps it at net.core.wmem_max). Seen from outside with ss(8), which shows a
socket's send buffer as skmem's tb."""

import re
import shutil
import socket
import subprocess
import time

import pytest

import pfp
from conftest import need, wait_for

SS = shutil.which("ss") or "/usr/bin/ss"


def sysctl(name):
    with open("/proc/sys/net/core/" + name) as f:
        return int(f.read())


def daemon_sndbufs(pid):
    """tb of each connected socket of process pid."""
    out = subprocess.run([SS, "-xmpH", "state", "established"], capture_output=True,
                         timeout=10).stdout.decode()
    bufs = []
    for line in out.splitlines():
        if "pid=%d," % pid in line:
            m = re.search(r"tb(\d+)", line)
            if m:
                bufs.append(int(m.group(1)))
    return bufs


def stalled_get(d, name):
    """Ask for a file and read nothing: the answer waits in the socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(d.sock))
    s.sendall(pfp.get_request(name))
    return s


def run_check(args):
    return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=15)


@pytest.mark.parametrize("value,printed", [("512K", "512K"), ("1M", "1M"),
                                           ("65536", "64K"), ("0", "0"),
                                           ("1000", "1000")])
def test_send_buffer_sizes_are_read_and_printed(daemon, value, printed):
    daemon.set("server", "send_buffer", value)
    daemon.write_ini()
    p = run_check([str(daemon.binary), "-c", str(daemon.ini), "--check-config"])
    assert p.returncode == 0, p.stderr
    assert "send_buffer = %s\n" % printed in p.stdout.decode()


@pytest.mark.parametrize("value", ["1G", "65M", "12Q", "-1", "", "M", "4 M"])
def test_bad_send_buffer_is_a_config_error(daemon, value):
    daemon.set("server", "send_buffer", value)
    daemon.write_ini()
    p = run_check([str(daemon.binary), "-c", str(daemon.ini), "--check-config"])
    err = p.stderr.decode()
    assert p.returncode == 78, err
    assert "[server] send_buffer: must be a size from 0 to 64M" in err, err


@pytest.mark.parametrize("setting", ["1M", "0"])
def test_large_body_gets_the_send_buffer(daemon, setting):
    need(shutil.which("ss") is not None, "needs ss (iproute2)")
    daemon.set("server", "send_buffer", setting)
    daemon.set("server", "workers", 1)
    daemon.put("big", b"x" * (8 << 20))
    daemon.put("small", b"y" * 4096)
    daemon.start()
    default = sysctl("wmem_default")
    want = default if setting == "0" else min(2 * (1 << 20), 2 * sysctl("wmem_max"))
    small = stalled_get(daemon, "small")
    big = stalled_get(daemon, "big")
    try:
        # The big answer fills whatever buffer it got; the small one only
        # its 4 KiB and keeps the kernel's default.
        def seen():
            b = daemon_sndbufs(daemon.proc.pid)
            return len(b) == 2 and sorted(b) == sorted([default, want])
        wait_for(seen, 10, "send buffers %r" % ([default, want],))
    finally:
        small.close()
        big.close()


def test_at_most_eight_connections_per_worker_hold_the_big_buffer(daemon):
    """Each such socket can pin twice send_buffer of kernel memory while its
    client does not read: a worker gives it to 8 connections at a time, the
    rest send with the kernel's default, and a closed one frees its place."""
    need(shutil.which("ss") is not None, "needs ss (iproute2)")
    if 2 * min(4 << 20, sysctl("wmem_max")) <= sysctl("wmem_default"):
        need(False, "net.core.wmem_max allows no buffer above the default")
    daemon.set("server", "workers", 1)
    daemon.put("big", b"x" * (4 << 20))
    daemon.start()
    default = sysctl("wmem_default")
    want = 2 * min(4 << 20, sysctl("wmem_max"))  # the default send_buffer, 4M
    socks = [stalled_get(daemon, "big") for _ in range(10)]
    try:
        def counts():
            b = daemon_sndbufs(daemon.proc.pid)
            return (b.count(want), b.count(default), len(b))
        wait_for(lambda: counts() == (8, 2, 10), 10, "8 big and 2 default buffers")
        socks.pop(0).close()  # it held a big one: the next big body gets it
        socks.pop(0).close()
        socks.append(stalled_get(daemon, "big"))
        time.sleep(0.5)
        wait_for(lambda: counts()[0] >= 7 and counts()[2] == 9, 10, "a freed place reused")
    finally:
        for s in socks:
            s.close()

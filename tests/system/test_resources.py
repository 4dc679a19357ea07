"""Bounded resources: a fixed pool of threads whatever the number of clients,
no file descriptors leaked by finished connections, and memory that does not
grow with file size or with many slow clients."""

import os

import pytest

import pfp
from conftest import link_big, raise_nofile, wait_for


def threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fixed_thread_pool(daemon):
    daemon.put("f", b"x")
    daemon.set("server", "workers", "3")
    daemon.start()
    pid = daemon.proc.pid
    base = threads(pid)
    assert 3 < base <= 3 + 6, "threads: %d for 3 workers" % base
    conns = [daemon.conn() for _ in range(200)]
    try:
        for c in conns[::10]:
            assert c.get("f").name == "OK"
        assert threads(pid) == base
    finally:
        for c in conns:
            c.close()


def test_no_fd_leak(daemon):
    raise_nofile(4096)
    daemon.put("f", b"x")
    daemon.start()
    pid = daemon.proc.pid
    with daemon.conn() as c:  # settle lazily opened descriptors
        assert c.get("f").name == "OK"
    base = fds(pid)
    for round_ in range(3):
        conns = [daemon.conn() for _ in range(300)]
        for i, c in enumerate(conns):
            if i % 3 == 0:
                assert c.get("f").name == "OK"
            elif i % 3 == 1:
                c.send(b"X")
        for c in conns:
            c.close()
    wait_for(lambda: fds(pid) <= base, 10, "descriptors to return to %d (now %d)" % (base, fds(pid)))


@pytest.mark.pf_timeout(240)
def test_memory_does_not_grow_with_file_size_or_slow_readers(daemon, bigfile):
    raise_nofile(4096)
    name, size, digest = link_big(bigfile, daemon)
    daemon.put("f", b"x")
    daemon.start()
    pid = daemon.proc.pid
    with daemon.conn(timeout=60) as c:  # warm up
        assert c.get(name, keep=False).sha256 == digest
    base = rss_kib(pid)
    # 16 readers that stop after 1 MiB of a 256 MiB file, and 1000
    # connections holding half a request each
    slow = []
    half = []
    try:
        for _ in range(16):
            c = daemon.conn(timeout=60)
            c.send(pfp.get_request(name))
            r = c.read_header()
            c.read_body(r, keep=False, limit=1 << 20)
            slow.append(c)
        for _ in range(1000):
            c = daemon.conn(timeout=60)
            c.send(pfp.get_request("f")[:15])
            half.append(c)
        with daemon.conn() as c:
            assert c.get("f").body == b"x"
        grown = rss_kib(pid) - base
        assert grown < 64 * 1024, "RSS grew by %d KiB" % grown
    finally:
        for c in slow + half:
            c.close()

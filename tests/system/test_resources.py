"""Bounded resources: a fixed pool of threads whatever the number of clients,
no file descriptors leaked by finished connections, memory that does not
grow with file size or with many slow clients, and a low descriptor limit
that lowers the connection limits in proportion instead of taking the
daemon down."""

import os
import re
import shutil

import pytest

import pfp
from conftest import link_big, need, raise_nofile, wait_for


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


def low_fd_limit(daemon, workdir, limit):
    """Run the daemon under RLIMIT_NOFILE soft = hard = limit (it raises the
    soft limit to the hard one at start, so both are set)."""
    wrapper = workdir / ("pipefiled-nofile-%d" % limit)
    wrapper.write_text('#!/bin/sh\nexec prlimit --nofile=%d:%d -- %s "$@"\n'
                       % (limit, limit, daemon.binary))
    os.chmod(wrapper, 0o755)
    daemon.binary = wrapper


def served_at_most(daemon):
    """(connections, per user or None) from the start-up warning."""
    m = re.search(r"serving at most (\d+) connections(?:, at most (\d+) per user)?",
                  daemon.stderr())
    assert m, "no warning about the descriptor limit:\n%s" % daemon.stderr()
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


def busy_message(daemon):
    with daemon.conn(timeout=5) as c:
        r = c.read_response()
        assert r.name == "EBUSY", r
        return r.message


@pytest.mark.pf_timeout(120)
def test_low_descriptor_limit_degrades_in_proportion(daemon, workdir):
    """RLIMIT_NOFILE = 96: the daemon says how many connections it serves,
    at least 8, and serves that many at once, each in the middle of a
    transfer (its socket and its file open), every body whole; one more
    gets EBUSY naming the limit, not EIO or silence."""
    need(shutil.which("prlimit"), "needs prlimit (util-linux)")
    data = os.urandom(1 << 20)  # more than a socket buffer: each send waits
    daemon.put("f", data)
    daemon.set("server", "max_connections_per_user", "0")  # all are root's
    low_fd_limit(daemon, workdir, 96)
    daemon.start()
    n, per_user = served_at_most(daemon)
    assert per_user is None
    assert 8 <= n <= (96 - 24) // 2, n
    conns = []
    try:
        for _ in range(n):
            c = daemon.conn(timeout=30)
            c.send(pfp.get_request("f"))
            r = c.read_header()
            assert (r.name, r.body_len) == ("OK", len(data)), r
            c.read_body(r, keep=True, limit=65536)
            conns.append((c, r))
        assert busy_message(daemon) == "EBUSY: connection limit (%d) reached" % n
        for c, r in conns:
            head = r.body
            r.body_len -= len(head)
            c.read_body(r, keep=True)
            assert head + r.body == data
    finally:
        for c, _ in conns:
            c.close()
    assert daemon.stop() == 0
    assert "EIO" not in b"".join(daemon.log_lines()).decode()


@pytest.mark.pf_timeout(60)
def test_low_descriptor_limit_scales_the_per_user_limit(daemon, workdir):
    """The default per-user limit (max_connections / 4) shrinks with the
    global one, so one user still cannot take every connection."""
    need(shutil.which("prlimit"), "needs prlimit (util-linux)")
    daemon.put("f", b"x")
    low_fd_limit(daemon, workdir, 96)
    daemon.start()
    n, per_user = served_at_most(daemon)
    assert per_user == n * 1024 // 4096, (n, per_user)
    held = []
    try:
        for _ in range(per_user):
            held.append(daemon.conn())
            assert held[-1].stat("f").name == "OK"
        assert busy_message(daemon) == "EBUSY: per-user connection limit (%d) reached" % per_user
    finally:
        for c in held:
            c.close()

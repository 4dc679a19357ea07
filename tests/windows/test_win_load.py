"""Concurrent clients: 50 pipefile.exe processes at once, each fetching
its own file and checked byte for byte; then many connections over raw
PFP/1 at once."""

import os
import subprocess
import time

import pytest

import pfp
from conftest import sha256, winpath

N = 50


@pytest.mark.pf_timeout(180)
def test_50_concurrent_clients(server, workdir):
    want = {}
    for i in range(N):
        data = os.urandom(64 * 1024 + i * 4099)  # 64 KiB .. ~260 KiB, all different
        server.put("c%02d.bin" % i, data)
        want[i] = sha256(data)
    outdir = workdir / "out"
    outdir.mkdir()
    t0 = time.monotonic()
    procs = [server.cli_popen("get", "/c%02d.bin" % i, "-o", winpath(outdir / ("c%02d.bin" % i)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i in range(N)]
    bad = []
    for i, p in enumerate(procs):
        try:
            rc = p.wait(timeout=max(1, 150 - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            bad.append("client %d did not finish" % i)
            continue
        if rc != 0:
            bad.append("client %d exited %d: %s" % (i, rc, p.stderr.read().decode(errors="replace")))
            continue
        got = (outdir / ("c%02d.bin" % i)).read_bytes()
        if sha256(got) != want[i]:
            bad.append("client %d: wrong bytes (%d bytes)" % (i, len(got)))
    assert not bad, "\n".join(bad[:10])
    print("50 concurrent pipefile.exe: %.1fs" % (time.monotonic() - t0))


@pytest.mark.pf_timeout(120)
def test_many_connections_pipelining(server):
    """20 raw connections open at once, each with 20 pipelined GETs."""
    want = {}
    for i in range(5):
        data = os.urandom(10000 + i)
        server.put("p%d.bin" % i, data)
        want["/p%d.bin" % i] = data
    paths = sorted(want) * 4
    conns = [server.conn(timeout=60) for _ in range(20)]
    try:
        for c in conns:
            c.send(b"".join(pfp.get_request(p) for p in paths))
        for c in conns:
            for p in paths:
                r = c.read_response()
                assert r.name == "OK" and r.body == want[p], (p, r)
    finally:
        for c in conns:
            c.close()

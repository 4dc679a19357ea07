"""A rename storm elsewhere on the system does not fail anyone's reads. While
one user renames its own files in a tight loop (in its own directory,
outside the served root), another reads a file through relative `../`
symlinks inside the root, shallow and very deep, for 3 s (some ten thousand requests): every
answer is OK with the right bytes, and the error log stays quiet.
(Before: openat2(RESOLVE_BENEATH) answers EAGAIN for a lookup that crossed a
".." while any rename ran anywhere; after 8 quick retries the daemon gave
up with EIO, for a large share of such requests, and logged each.)"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import CHILD_ENV, PY, USER_A, USER_B, need_root, sha256

DEPTH = 100   # directories the deep link climbs back up through
CONNS = 2
EACH = 1500   # 3,000 requests a round
STORM_S = 3   # rounds go on for this long

# Runs as USER_B: renames its own file back and forth until SIGTERM (or
# 60 s), says "go" once started, and prints how many renames it did.
RENAMER = r"""
import os, signal, sys
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
signal.alarm(60)
d = sys.argv[1]
a, b = os.path.join(d, "one"), os.path.join(d, "two")
open(a, "w").close()
n = 0
print("go", flush=True)
while not stop:
    os.rename(a, b)
    os.rename(b, a)
    n += 2
print(n, flush=True)
"""


@pytest.mark.pf_timeout(120)
def test_reads_through_dotdot_links_survive_a_rename_storm(daemon, runner, workdir):
    need_root()
    data = os.urandom(5000)
    # x/y/file, A's own and readable by A only
    daemon.mkdir("x/y")
    daemon.put("x/y/file", data, mode=0o600, uid=USER_A.uid, gid=USER_A.gid)
    # a/b/c/d/link -> ../../../../x/y/file
    daemon.mkdir("a/b/c/d")
    os.symlink("../../../../x/y/file", daemon.root / "a/b/c/d/link")
    # deep/d/.../d (DEPTH levels)/link -> ../ * DEPTH + x/y/file
    deep = "deep/" + "/".join(["d"] * (DEPTH - 1))
    daemon.mkdir(deep)
    os.symlink("../" * DEPTH + "x/y/file", daemon.root / deep / "link")
    daemon.start()

    storm_dir = workdir / "storm-b"
    storm_dir.mkdir(mode=0o700)
    os.chown(storm_dir, USER_B.uid, USER_B.gid)
    renamer = subprocess.Popen(USER_B.setpriv() + [PY, "-I", "-c", RENAMER, str(storm_dir)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=CHILD_ENV, cwd=str(workdir))
    runner.procs.append(renamer)
    assert renamer.stdout.readline() == b"go\n", renamer.stderr.read()
    time.sleep(0.2)  # well under way

    spec = workdir / "spec.json"
    entry = {"status": "OK", "sha256": sha256(data), "size": len(data)}
    spec.write_text(json.dumps([dict(entry, path="a/b/c/d/link"),
                                dict(entry, path=deep + "/link")]))
    os.chmod(spec, 0o644)
    err_at = daemon.stderr_path.stat().st_size
    # Rounds of CONNS x EACH requests until the storm has run STORM_S.
    total = {"ok": 0, "mismatch": 0, "errors": 0, "requests": 0}
    samples = []
    t0 = time.monotonic()
    while total["requests"] == 0 or time.monotonic() - t0 < STORM_S:
        load = runner.popen_pfp(USER_A, daemon.sock, "load", "--spec", "@%s" % spec,
                                "--conns", CONNS, "--requests", EACH, "--pipeline", 4)
        out, err = load.communicate(timeout=60)
        assert load.returncode == 0, err
        res = json.loads(out.decode().strip().splitlines()[-1])
        for k in total:
            total[k] += res[k]
        samples += res["samples"][:2]

    # The storm ran all along: still renaming when the last answer came.
    assert renamer.poll() is None, renamer.stderr.read()
    renamer.send_signal(signal.SIGTERM)
    rout, rerr = renamer.communicate(timeout=30)
    renames = int(rout.decode().split()[-1])
    print("rename storm: %d renames in %.1fs; reads %r" %
          (renames, time.monotonic() - t0, total))
    assert renames > 10000, "the storm was too weak to test anything: %d" % renames

    assert (total["ok"], total["mismatch"], total["errors"]) == \
        (total["requests"], 0, 0), (total, samples[:3])
    lines = daemon.stderr_path.read_bytes()[err_at:].decode(errors="replace").splitlines()
    assert lines == [], lines[:5]
    assert daemon.stop() == 0

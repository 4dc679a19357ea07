"""The benchmark's load generator (bench/pfbench.c) counts what it claims to:
against a running pipefiled and an nginx started here from bench's own
nginx.conf.in, over PFP/1 and HTTP/1.1, keep-alive and one request per
connection, it reports requests, bytes (= requests x file size, checked
against the servers' access logs) and zero errors; a missing file or a
wrong expected length makes every request an error and the exit status
non-zero; its idle mode holds connections and notices a refusal. The bare
baseline (bench/pfbase.c) is checked the same way. Functional only: no
speed bound here (that is `make bench`)."""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BUILD, REPO, USER_A, listening, need, need_root

NGINX = "/usr/sbin/nginx"
SIZE = 5000  # not a power of two: a header counted as body would show
RUN_S = "1"


def _bench_run():
    """bench/run.py as a module (its nginx.conf filling and /proc helpers)."""
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench_run = _bench_run()


@pytest.fixture
def pfbench(workdir):
    """pfbench and pfbase copied where the client uid may run them."""
    d = workdir / "bin"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    for name in ("pfbench", "pfbase"):
        src = BUILD / name
        need(src.exists(), "%s not built (make %s)" % (src, src))
        shutil.copy2(src, d / name)
        os.chmod(d / name, 0o755)
    return d


def load(bin, sock, path, expect, proto="pfp", close=False, conns=4, user=USER_A):
    argv = [str(bin / "pfbench"), "load", "-s", str(sock), "-p", path, "-e", str(expect),
            "-P", proto, "-c", str(conns), "-t", "2", "-d", RUN_S, "-w", "0"]
    if close:
        argv.append("-1")
    if user:
        argv = user.setpriv() + argv
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30)
    lines = p.stdout.splitlines()
    assert lines[:2] == ["measure start", "measure end"], p.stdout + p.stderr
    m = re.match(r"result (.*)$", lines[2])
    assert m, p.stdout
    res = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", m.group(1))}
    return p.returncode, res


def check_counts(rc, res, size):
    assert rc == 0, res
    assert res["errors"] == 0, res
    assert res["reqs"] > 0, res
    assert res["bytes"] == res["reqs"] * size, res
    assert 0.9 <= res["seconds"] <= 5, res
    assert 0 < res["p50_us"] <= res["p99_us"], res


def check_errors(rc, res):
    assert rc != 0, res
    assert res["errors"] > 0, res
    assert res["reqs"] == 0 and res["bytes"] == 0, res


# ------------------------------------------------------------ pipefiled

@pytest.mark.parametrize("close", [False, True], ids=["keepalive", "close"])
def test_pfp_counts_requests_and_bytes(daemon, pfbench, close):
    need_root()
    daemon.put("f", os.urandom(SIZE))
    daemon.start()
    rc, res = load(pfbench, daemon.sock, "/f", SIZE, close=close)
    check_counts(rc, res, SIZE)
    # Every counted request is one the daemon served and logged, as uid A
    # (warm-up and the window's edges add lines, never remove them).
    daemon.stop()
    ok = [l for l in daemon.log_lines()
          if b"status=OK" in l and b"uid=%d" % USER_A.uid in l and b" bytes=%d " % SIZE in l]
    assert len(ok) >= res["reqs"], (len(ok), res)


def test_pfp_missing_file_and_wrong_length_are_errors(daemon, pfbench):
    need_root()
    daemon.put("f", os.urandom(SIZE))
    daemon.start()
    check_errors(*load(pfbench, daemon.sock, "/missing", SIZE))
    check_errors(*load(pfbench, daemon.sock, "/f", SIZE - 1))
    check_errors(*load(pfbench, daemon.sock, "/f", SIZE + 1, close=True))


def test_idle_holds_connections_and_notices_refusals(daemon, pfbench):
    need_root()
    daemon.set("server", "max_connections", "20")
    daemon.set("server", "max_connections_per_user", "0")
    daemon.start()

    def idle(n):
        p = subprocess.Popen(USER_A.setpriv() + [str(pfbench / "pfbench"), "idle", "-s",
                                                 str(daemon.sock), "-n", str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            assert p.poll() is None, "pfbench idle exited before stdin closed"
        finally:
            p.stdin.close()
            rc = p.wait(timeout=20)
        return line.strip(), rc, p.stderr.read()

    line, rc, err = idle(15)
    assert (line, rc) == ("idle conns=15 errors=0", 0), err
    # Past max_connections the daemon answers EBUSY at once: seen as errors.
    line, rc, err = idle(25)
    assert re.fullmatch(r"idle conns=25 errors=[1-9]\d*", line) and rc == 1, (line, err)
    assert "EBUSY" in err


# ------------------------------------------------------------ baseline

def test_baseline_serves_what_pfbench_counts(workdir, pfbench):
    need_root()
    root = workdir / "files"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    (root / "f").write_bytes(os.urandom(SIZE))
    os.chmod(root / "f", 0o644)
    sock = workdir / "base.sock"
    p = subprocess.Popen([str(pfbench / "pfbase"), str(sock), str(root)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert p.stdout.readline() == b"ready\n"
        for close in (False, True):
            check_counts(*load(pfbench, sock, "/f", SIZE, close=close), SIZE)
        check_errors(*load(pfbench, sock, "/missing", SIZE))
    finally:
        p.kill()
        p.wait(timeout=10)


# ------------------------------------------------------------ nginx

@pytest.fixture
def nginx(workdir):
    """nginx from bench/nginx.conf.in on a Unix socket in workdir, serving
    workdir/www; stopped (workers included) on teardown."""
    need_root()
    need(os.path.exists(NGINX), "needs %s (nginx-light)" % NGINX)
    d = workdir / "nginx"
    d.mkdir(mode=0o755)
    www = workdir / "www"
    www.mkdir(mode=0o755)
    os.chmod(www, 0o755)
    sock = d / "nginx.sock"
    conf = d / "nginx.conf"
    conf.write_text(bench_run.nginx_conf(REPO / "bench" / "nginx.conf.in", d, www, sock,
                                         d / "access.log", 2))
    p = subprocess.Popen([NGINX, "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(d / "stderr.log", "wb"), start_new_session=True)
    seen = {}
    try:
        deadline = time.monotonic() + 20
        while not (sock.exists() and listening(sock) and len(bench_run.proc_tree(p.pid)) >= 3):
            assert p.poll() is None, "nginx exited %d: %s" % (
                p.returncode, (d / "stderr.log").read_text(errors="replace"))
            assert time.monotonic() < deadline, "nginx not ready"
            time.sleep(0.05)
        for pid in bench_run.proc_tree(p.pid):
            seen[pid] = bench_run.start_time(pid)
        os.chmod(sock, 0o666)  # bound with root's umask; the client is uid A
        yield sock, www, d
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
        left = [pid for pid, st in seen.items()
                if st is not None and bench_run.start_time(pid) == st]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, "nginx processes outlived SIGTERM: %r" % left


@pytest.mark.parametrize("close", [False, True], ids=["keepalive", "close"])
def test_http_counts_requests_and_bytes(nginx, pfbench, close):
    sock, www, d = nginx
    (www / "f").write_bytes(os.urandom(SIZE))
    os.chmod(www / "f", 0o644)
    rc, res = load(pfbench, sock, "/f", SIZE, proto="http", close=close)
    check_counts(rc, res, SIZE)
    # nginx logs a request when it is done: give it its last writes.
    time.sleep(0.2)
    ok = [l for l in (d / "access.log").read_text().splitlines()
          if '"GET /f HTTP/1.1" 200 %d ' % SIZE in l]
    assert len(ok) >= res["reqs"], (len(ok), res)


def test_http_missing_file_and_wrong_length_are_errors(nginx, pfbench):
    sock, www, d = nginx
    (www / "f").write_bytes(os.urandom(SIZE))
    os.chmod(www / "f", 0o644)
    check_errors(*load(pfbench, sock, "/missing", SIZE, proto="http"))
    check_errors(*load(pfbench, sock, "/f", SIZE + 1, proto="http"))
    check_errors(*load(pfbench, sock, "/f", SIZE - 1, proto="http", close=True))

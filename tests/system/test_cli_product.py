"""The pipefile CLI and its library as a product (issue 9, part 3):

- `get PATH...`: several paths on one connection, pipelined: the access log
  shows one conn= for all, in order; bodies go to standard output one after
  another, or with -o DIR/ into DIR under each PATH's last component; a
  refusal in the middle does not stop the others and sets the exit code
  (the first failure's); more paths than one window (64) still share the
  connection; -o with several PATHs must be a directory.
- `--resume -o OUT`: a partial .OUT.pipefile-partial whose stamp (its
  mtime) matches the remote file's is continued with a ranged GET (the log
  shows bytes = size - partial), also after the client was killed mid-way;
  a remote file changed in between is fetched from 0, with a message.
- The progress meter: on stderr when it is a terminal (a pty), never when
  it is a pipe.
- `--expect-server-user NAME`: a name (or uid) checked against the server's
  SO_PEERCRED uid before anything is sent: root passes; another user is
  refused with 77 and the daemon logs nothing; an unknown name is a usage
  error.
- The C library: `make install-dev` into a DESTDIR installs pipefile.h,
  proto.h, libpipefile.a and pipefile.pc; docs/example-client.c builds with
  `pkg-config --cflags --libs pipefile` against that tree and fetches a
  file from a real daemon.
"""

import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD, REPO, need, parse_log_line, wait_for

MAKE_TIMEOUT = 240


def log(daemon):
    return [parse_log_line(l, "text") for l in daemon.log_lines()]


def log_settled(daemon, n):
    """The access log once it has n lines (the writer is asynchronous)."""
    wait_for(lambda: len(daemon.log_lines()) >= n, 10, "%d access-log lines" % n)
    return log(daemon)


# ------------------------------------------------------------ get PATH...

def test_get_several_paths_one_connection(daemon, runner):
    data = {"a": b"alpha\n", "b": os.urandom(200000), "c": b"gamma\n"}
    for k, v in data.items():
        daemon.put(k, v)
    daemon.start()
    p = runner.cli(None, "-s", daemon.sock, "get", "a", "b", "c")
    assert p.returncode == 0, p.stderr
    assert p.stdout == data["a"] + data["b"] + data["c"]
    recs = log_settled(daemon, 3)
    assert [r["path"] for r in recs] == [b"a", b"b", b"c"]
    assert [r["op"] for r in recs] == ["GET"] * 3
    assert len({r["conn"] for r in recs}) == 1, recs
    assert [r["bytes"] for r in recs] == [len(data[k]) for k in "abc"]


def test_get_several_into_directory_first_failure_code(daemon, runner, workdir):
    daemon.put("x/one", b"1")
    daemon.put("two", b"22")
    daemon.put("secret", b"s", mode=0o600, uid=61001, gid=61001)
    daemon.start()
    out = workdir / "out"
    out.mkdir()
    # a refusal in the middle: the others are still fetched, the exit code
    # is the first failure's (ENOENT 11 before EACCES 12)
    p = runner.cli(None, "-s", daemon.sock, "get", "x/one", "missing", "two",
                   "nothere", "-o", str(out) + "/")
    assert p.returncode == 11, p.stderr
    assert p.stderr.count(b"\n") == 2, p.stderr
    assert p.stderr.startswith(b"pipefile: missing: "), p.stderr
    assert sorted(os.listdir(out)) == ["one", "two"]  # no temp file left
    assert (out / "one").read_bytes() == b"1" and (out / "two").read_bytes() == b"22"
    recs = log_settled(daemon, 4)
    assert [r["path"] for r in recs] == [b"x/one", b"missing", b"two", b"nothere"]
    assert len({r["conn"] for r in recs}) == 1, recs


@pytest.mark.parametrize("args", [
    ["get", "a", "b", "-o", "file"],           # several PATHs need -o DIR/
    ["get", "a/", "-o", "dir/"],               # no last component to save as
    ["get", "x/..", "-o", "dir/"],
    ["get", "d1/a", "d2/a", "-o", "dir/"],     # the same name twice
    ["get", "a", "--resume"],                  # --resume needs -o
    ["get", "a", "b", "--resume", "-o", "d/"],  # one PATH
    ["get", "a", "--resume", "--offset", "1", "-o", "f"],
    ["stat", "a", "b"],
    ["stat", "a", "--resume"],
    ["get", "a", "--expect-server-user", "no-such-user-pf9"],
])
def test_usage_errors(runner, workdir, args):
    p = runner.cli(None, "-s", workdir / "none.sock", *args)
    assert p.returncode == 64, (args, p.returncode, p.stderr)
    assert p.stderr.startswith(b"pipefile: "), p.stderr


def test_more_paths_than_one_window(daemon, runner):
    """150 paths: three windows of requests, one connection, in order."""
    names = ["f%03d" % i for i in range(150)]
    for n in names:
        daemon.put(n, n.encode() + b"\n")
    daemon.start()
    p = runner.cli(None, "-s", daemon.sock, "get", *names)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"".join(n.encode() + b"\n" for n in names)
    recs = log_settled(daemon, 150)
    assert [r["path"].decode() for r in recs] == names
    assert len({r["conn"] for r in recs}) == 1


# ------------------------------------------------------------ --resume

def partial_of(out):
    return out.parent / (".%s.pipefile-partial" % out.name)


def test_resume_continues_a_matching_partial(daemon, runner, workdir):
    data = os.urandom(3 << 20)
    src = daemon.put("f.bin", data)
    mtime = int(os.stat(src).st_mtime)
    daemon.start()
    out = workdir / "f.bin"
    part = partial_of(out)
    part.write_bytes(data[:1000000])
    os.utime(part, (mtime, mtime))
    p = runner.cli(None, "-s", daemon.sock, "get", "f.bin", "--resume", "-o", out)
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    assert out.read_bytes() == data
    assert not part.exists()
    assert int(os.stat(out).st_mtime) == mtime  # the remote file's
    recs = log_settled(daemon, 2)
    assert [(r["op"], r["status"]) for r in recs] == [("STAT", "OK"), ("GET", "OK")]
    assert recs[1]["bytes"] == len(data) - 1000000  # a ranged GET
    assert recs[0]["conn"] == recs[1]["conn"]
    # no partial at all: a whole transfer, same result
    out.unlink()
    p = runner.cli(None, "-s", daemon.sock, "get", "f.bin", "--resume", "-o", out)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == data and not part.exists()
    assert log_settled(daemon, 4)[3]["bytes"] == len(data)


class StallingRelay:
    """A Unix socket relay to the daemon that passes the daemon's bytes on
    only up to `limit`, then holds the connection open: the client waits
    mid-body, to be killed there."""

    def __init__(self, path, target, limit):
        self.path, self.target, self.limit = str(path), str(target), limit
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.lsock.listen(1)
        self.lsock.settimeout(30)
        self.done = threading.Event()
        self.socks = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        d = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        d.connect(self.target)
        self.socks += [c, d]
        sent = 0
        while not self.done.is_set():
            r, _, _ = select.select([c, d] if sent < self.limit else [c], [], [], 0.1)
            for s in r:
                try:
                    b = s.recv(65536 if s is c else min(65536, self.limit - sent))
                except OSError:
                    b = b""
                if not b:
                    self.done.wait(30)
                    return
                if s is c:
                    d.sendall(b)
                else:
                    c.sendall(b)
                    sent += len(b)

    def close(self):
        self.done.set()
        self.thread.join(10)
        for s in self.socks + [self.lsock]:
            s.close()


@pytest.mark.pf_timeout(180)
def test_resume_after_the_client_was_killed(daemon, runner, workdir, tools):
    data = os.urandom(8 << 20)
    daemon.put("big.bin", data)
    daemon.start()
    out = workdir / "big.bin"
    part = partial_of(out)
    relay = StallingRelay(workdir / "relay.sock", daemon.sock, 3 << 20)
    try:
        proc = subprocess.Popen([str(tools / "pipefile"), "-s", relay.path, "get",
                                 "big.bin", "--resume", "-o", str(out)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=str(workdir))
        runner.procs.append(proc)

        def stalled():
            if not part.exists():
                return False
            n = part.stat().st_size
            time.sleep(0.3)
            return n > (2 << 20) and part.stat().st_size == n
        wait_for(stalled, 60, "the partial file to stop growing")
        proc.kill()
        proc.wait(10)
    finally:
        relay.close()
    have = part.stat().st_size
    assert 0 < have < len(data) and not out.exists()
    assert part.read_bytes() == data[:have]
    p = runner.cli(None, "-s", daemon.sock, "get", "big.bin", "--resume", "-o", out)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == data and not part.exists()
    # The access log is written by its own thread, after the client has its
    # bytes, and the cut transfer's line may come in any order: wait for the
    # resumed, ranged GET's line.
    want = ("GET", "OK", len(data) - have)
    wait_for(lambda: any((r["op"], r["status"], r["bytes"]) == want
                         for r in log(daemon)),
             30, "the resumed GET's access-log line")


def test_resume_restarts_when_the_remote_file_changed(daemon, runner, workdir):
    old = os.urandom(1 << 20)
    src = daemon.put("f.bin", old)
    daemon.start()
    out = workdir / "f.bin"
    part = partial_of(out)
    # a partial of the old file, stamped with its mtime
    part.write_bytes(old[:300000])
    m = int(os.stat(src).st_mtime)
    os.utime(part, (m, m))
    # changed since: new bytes, a later mtime (same size)
    new = os.urandom(1 << 20)
    daemon.put("f.bin", new)
    os.utime(src, (m + 100, m + 100))
    p = runner.cli(None, "-s", daemon.sock, "get", "f.bin", "--resume", "-o", out)
    assert p.returncode == 0, p.stderr
    assert b"changed since the partial transfer" in p.stderr and b"starting over" in p.stderr
    assert out.read_bytes() == new and not part.exists()
    assert log_settled(daemon, 2)[1]["bytes"] == len(new)
    # a remote file now shorter than the partial, same mtime: also over
    small = b"short"
    daemon.put("f.bin", small)
    os.utime(src, (m, m))
    part.write_bytes(old[:300000])
    os.utime(part, (m, m))
    p = runner.cli(None, "-s", daemon.sock, "get", "f.bin", "--resume", "-o", out)
    assert p.returncode == 0, p.stderr
    assert b"starting over" in p.stderr
    assert out.read_bytes() == small


def test_resume_refuses_a_partial_that_is_a_link(daemon, runner, workdir):
    daemon.put("f", b"data")
    daemon.start()
    victim = workdir / "victim"
    victim.write_bytes(b"keep")
    out = workdir / "f"
    os.symlink(victim, partial_of(out))
    p = runner.cli(None, "-s", daemon.sock, "get", "f", "--resume", "-o", out)
    assert p.returncode == 73, p.stderr
    assert victim.read_bytes() == b"keep" and not out.exists()
    assert log(daemon) == []  # refused before connecting


# ------------------------------------------------------------ progress

def run_slow_reader(argv, stderr, cwd):
    """Run argv with stdout read slowly (256 KiB every 50 ms), so the
    transfer lasts seconds; returns (rc, stdout bytes)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr, cwd=cwd)
    got = []
    try:
        while True:
            b = proc.stdout.read1(256 << 10) if hasattr(proc.stdout, "read1") else \
                os.read(proc.stdout.fileno(), 256 << 10)
            if not b:
                break
            got.append(b)
            time.sleep(0.05)
        return proc.wait(30), b"".join(got)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.pf_timeout(120)
def test_progress_on_a_terminal_only(daemon, workdir, tools):
    data = os.urandom(16 << 20)
    daemon.put("f", data)
    daemon.start()
    argv = [str(tools / "pipefile"), "-s", str(daemon.sock), "get", "f"]
    # stderr a terminal: the meter
    master, slave = pty.openpty()
    seen = bytearray()
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    seen.extend(os.read(master, 65536))
                except OSError:
                    return
    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        rc, out = run_slow_reader(argv, slave, str(workdir))
    finally:
        os.close(slave)
        time.sleep(0.2)
        stop.set()
        t.join(5)
        os.close(master)
    assert rc == 0 and out == data, bytes(seen)
    text = bytes(seen).decode(errors="replace")
    assert re.search(r"pipefile: f: [\d.]+ [KMG]?i?B of 16\.0 MiB \(\d+%\), [\d.]+ [KMG]?i?B/s, "
                     r"ETA \d+:\d\d", text), text
    assert "16.0 MiB of 16.0 MiB (100%)" in text, text
    # stderr a pipe: nothing at all
    rc, out = run_slow_reader(argv, subprocess.PIPE, str(workdir))
    assert rc == 0 and out == data
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0 and p.stderr == b""


@pytest.mark.pf_timeout(120)
def test_no_progress_over_output_on_a_terminal(daemon, workdir, tools):
    """Both stdout and stderr terminals (the file's bytes on the screen): no
    meter drawn over them, though the transfer lasts seconds."""
    daemon.put("f", os.urandom(2 << 20))
    daemon.start()
    out_m, out_s = pty.openpty()
    err_m, err_s = pty.openpty()
    proc = subprocess.Popen([str(tools / "pipefile"), "-s", str(daemon.sock), "get", "f"],
                            stdin=subprocess.DEVNULL, stdout=out_s, stderr=err_s,
                            cwd=str(workdir))
    os.close(out_s)
    os.close(err_s)
    err = bytearray()
    start = time.monotonic()
    try:
        while True:
            r, _, _ = select.select([out_m, err_m], [], [], 0.1)
            if out_m in r:
                try:
                    if not os.read(out_m, 16384):
                        break
                except OSError:  # EIO: the child closed its end
                    break
                time.sleep(0.01)  # ~1.6 MB/s: well over a second
            if err_m in r:
                try:
                    err.extend(os.read(err_m, 65536))
                except OSError:
                    pass
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(out_m)
        os.close(err_m)
    assert time.monotonic() - start > 1.2
    assert bytes(err) == b"", bytes(err)


# ------------------------------------------------------------ --expect-server-user

def test_expect_server_user(daemon, runner):
    daemon.put("f", b"payload")
    daemon.start()
    for opt in (["--expect-server-user", "root"], ["--expect-server-user=0"],
                ["--server-uid", "root"]):
        p = runner.cli(None, "-s", daemon.sock, *opt, "get", "f")
        assert (p.returncode, p.stdout) == (0, b"payload"), (opt, p.stderr)
    n = len(log_settled(daemon, 3))
    assert n == 3
    # another user's name: refused before anything is sent
    p = runner.cli(None, "-s", daemon.sock, "--expect-server-user", "nobody", "get", "f")
    assert p.returncode == 77, p.stderr
    assert p.stdout == b""
    assert p.stderr == ("pipefile: f: %s is served by uid 0, not the expected uid 65534; "
                        "refusing to talk to it\n" % daemon.sock).encode()
    p = runner.cli(None, "-s", daemon.sock, "stat", "f",
                   env={"PIPEFILE_SERVER_UID": "nobody"})
    assert p.returncode == 77, p.stderr
    time.sleep(0.5)
    assert len(daemon.log_lines()) == n  # nothing reached the daemon


def test_help_documents_the_new_options(runner):
    p = runner.cli(None, "--help")
    assert p.returncode == 0
    out = p.stdout.decode()
    for s in ("get PATH...", "--resume", "--expect-server-user USER", ".OUT.pipefile-partial",
              "ending in \"/\" is a directory", "first failure", "progress"):
        assert s in out, s


# ------------------------------------------------------------ the library

@pytest.mark.pf_timeout(MAKE_TIMEOUT + 60)
def test_example_builds_against_installed_library(daemon, workdir):
    need(shutil.which("make") is not None, "needs make")
    need(shutil.which("pkg-config") is not None, "needs pkg-config")
    need(shutil.which("gcc") is not None, "needs gcc")
    dest = workdir / "dest"
    p = subprocess.run(["make", "-C", str(REPO), "--no-print-directory", "install-dev",
                        "DESTDIR=%s" % dest, "PREFIX=/usr/local", "BUILD=%s" % BUILD],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=MAKE_TIMEOUT,
                       preexec_fn=lambda: os.umask(0o022))
    assert p.returncode == 0, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    files = sorted(os.path.relpath(os.path.join(d, f), dest)
                   for d, _, fs in os.walk(dest) for f in fs)
    assert files == ["usr/local/include/pipefile/pipefile.h",
                     "usr/local/include/pipefile/proto.h",
                     "usr/local/lib/libpipefile.a",
                     "usr/local/lib/pkgconfig/pipefile.pc"], files
    for f in files:
        assert os.stat(dest / f).st_mode & 0o777 == 0o644, f
    pc = (dest / "usr/local/lib/pkgconfig/pipefile.pc").read_text()
    assert "prefix=/usr/local\n" in pc and "@" not in pc, pc
    env = dict(os.environ, PKG_CONFIG_PATH=str(dest / "usr/local/lib/pkgconfig"),
               PKG_CONFIG_LIBDIR="")
    ver = re.search(r'PIPEFILE_VERSION "([^"]+)"', (REPO / "common/version.h").read_text())
    p = subprocess.run(["pkg-config", "--modversion", "pipefile"], env=env,
                       capture_output=True, timeout=30)
    assert p.stdout.decode().strip() == ver.group(1), p.stderr
    p = subprocess.run(["pkg-config", "--define-variable=prefix=%s/usr/local" % dest,
                        "--cflags", "--libs", "pipefile"], env=env, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    flags = p.stdout.decode().split()
    assert flags == ["-I%s/usr/local/include/pipefile" % dest, "-L%s/usr/local/lib" % dest,
                     "-lpipefile"], flags
    exe = workdir / "example-client"
    # A library built for the sanitizers (`make asan`) links only with them.
    lib = (dest / "usr/local/lib/libpipefile.a").read_bytes()
    san = ["-fsanitize=address,undefined"] if b"__asan_" in lib else []
    # only the installed tree: no -I into the checkout
    p = subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror"] + san +
                       ["-o", str(exe), str(REPO / "docs/example-client.c")] + flags,
                       capture_output=True, timeout=120, cwd=str(workdir))
    assert p.returncode == 0, p.stderr.decode(errors="replace")

    data = os.urandom(100000)
    daemon.put("dir/file.bin", data)
    daemon.start()
    p = subprocess.run([str(exe), str(daemon.sock), "dir/file.bin"], capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == data
    assert p.stderr.decode().startswith("example-client: dir/file.bin: 100000 bytes, mtime ")
    p = subprocess.run([str(exe), str(daemon.sock), "missing"], capture_output=True, timeout=60)
    assert p.returncode == 1 and p.stderr.startswith(b"example-client: missing: ENOENT"), p.stderr
    recs = log_settled(daemon, 3)
    assert [(r["op"], r["status"]) for r in recs] == [("STAT", "OK"), ("GET", "OK"),
                                                      ("STAT", "ENOENT")]

"""Fault injection: the file changes while it is being sent (issue 11, item
3). A 16 MiB file, a client that reads slowly (the pipefile CLI as another
uid, its standard output a pipe the test stops reading), and the file
truncated, replaced by a rename, deleted, or truncated and written anew in
the middle of the transfer. The client gets the complete old bytes, or a
short body and an error (CLI exit 76) — never mixed bytes presented as
success. (Truncation to a shorter size through the raw protocol:
test_status.py.)"""

import fcntl
import hashlib
import os
import select
import struct
import subprocess
import termios
import time

import pytest

from conftest import CHILD_ENV, USER_A, need_root, parse_log_line

SIZE = 16 << 20  # far more than the socket and pipe buffers hold
HEAD = 1 << 20  # read before the change


def read_exactly(f, n, timeout):
    """n bytes from the pipe f, within timeout."""
    out = bytearray()
    deadline = time.monotonic() + timeout
    fd = f.fileno()
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, "only %d of %d bytes from the client within %ss" % (len(out), n, timeout)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, n - len(out))
            assert chunk, "the client ended after %d bytes" % len(out)
            out += chunk
    return bytes(out)


def pipe_held(f):
    """Bytes waiting in the pipe f (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(f.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def wait_stalled(f):
    """Wait until the client's standard output (the pipe f) stays full:
    the client is blocked writing it and reads its socket no more."""
    full = fcntl.fcntl(f.fileno(), 1032)  # F_GETPIPE_SZ
    last, since = -1, time.monotonic()
    deadline = since + 30
    while time.monotonic() < deadline:
        n = pipe_held(f)
        if n != last:
            last, since = n, time.monotonic()
        elif n == full and time.monotonic() - since > 0.2:
            return
        time.sleep(0.02)
    raise AssertionError("the client never stalled (%d bytes in its pipe)" % last)


def cli_popen(runner, user, *args):
    """The pipefile CLI as user, its standard output a pipe the test reads
    (or does not: a slow reader)."""
    argv = user.setpriv() + [str(runner.tools / "pipefile")] + [str(a) for a in args]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=str(runner.workdir), env=CHILD_ENV)
    runner.procs.append(p)
    return p


def change(daemon, how, path, new):
    if how == "truncate":
        os.truncate(path, 0)
    elif how == "rename_over":
        tmp = daemon.put("f.new", new)
        os.rename(tmp, path)
    elif how == "delete":
        os.unlink(path)
    elif how == "truncate_rewrite":  # what cp or a shell's > does to an existing file
        with open(path, "wb") as f:
            f.write(new)
    else:
        raise AssertionError(how)


CASES = [
    pytest.param("truncate", id="truncate"),
    pytest.param("rename_over", id="rename_over"),
    pytest.param("delete", id="delete"),
    pytest.param("truncate_rewrite", id="truncate_rewrite"),
]


@pytest.mark.pf_timeout(60)
@pytest.mark.parametrize("how", CASES)
def test_file_changed_mid_transfer_old_bytes_or_error(daemon, runner, how):
    need_root()
    old = os.urandom(SIZE)
    new = os.urandom(SIZE)
    path = daemon.put("f", old)
    daemon.put("ok", b"ok")
    daemon.set("server", "send_timeout", "30s")
    daemon.start()
    p = cli_popen(runner, USER_A, "-s", daemon.sock, "get", "f")
    try:
        head = read_exactly(p.stdout, HEAD, 30)
        # the client's pipe fills, then its socket: the daemon waits for it,
        # so the change lands, whole, in the middle of the transfer
        wait_stalled(p.stdout)
        change(daemon, how, path, new)
        rest, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    got = head + rest
    whole = p.returncode == 0
    if whole:
        # success means every byte is the old file's
        assert len(got) == SIZE, (len(got), err)
        assert hashlib.sha256(got).digest() == hashlib.sha256(old).digest(), \
            "exit 0 with bytes that are not the old file (%s)" % (
                "old then new" if got[-HEAD:] == new[-HEAD:] else "mixed")
    else:
        # an error: a short body, every byte of it the old file's, said so
        assert p.returncode == 76, (p.returncode, err)
        assert err.startswith(b"pipefile: f: "), err
        assert len(got) < SIZE
        if how != "truncate_rewrite":
            # (rewritten in place, the bytes sent after the rewrite are the
            # new file's: what matters is that the body ends short)
            assert got == old[:len(got)]
    # which of the two it is, per case
    if how in ("rename_over", "delete"):
        assert whole, "the open file was replaced or unlinked, not changed: %r" % err
    elif how in ("truncate", "truncate_rewrite"):
        assert not whole
    assert daemon.get("ok").body == b"ok"  # healthy
    assert daemon.stop() == 0
    recs = [parse_log_line(l, "text") for l in daemon.log_lines()]
    (rec,) = [r for r in recs if r["path"] == b"f"]
    assert rec["uid"] == USER_A.uid and rec["size"] == SIZE, rec
    if whole:
        assert (rec["status"], rec["bytes"]) == ("OK", SIZE), rec
    else:
        # the log says how much went out, and the error log why it stopped
        assert HEAD <= rec["bytes"] < SIZE, rec
        if how == "truncate_rewrite":
            assert "the file changed while it was sent; closing %d bytes short" % (
                SIZE - rec["bytes"]) in daemon.stderr()
        else:
            assert "file ended %d bytes early; closing" % (SIZE - rec["bytes"]) in daemon.stderr()

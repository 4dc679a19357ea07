"""The CLI's exit codes for the statuses the other CLI tests cannot provoke
through a healthy daemon on a healthy disk: EIO (17) and a short body (76)
from a failing disk, ERANGE (19) from a range past the end, and EPROTO (15)
from a server that answers EPROTO (a stand-in: the CLI never sends a
malformed request itself)."""

import socket
import struct
import threading

from conftest import need
from test_status import _failing_disk, _loop_usable, _umount


def test_erange_19(daemon, runner, workdir):
    daemon.put("f", b"0123456789")
    daemon.start()
    p = runner.cli(None, "-s", daemon.sock, "get", "f", "--offset", "11",
                   "-o", workdir / "out")
    assert p.returncode == 19, p.stderr
    assert p.stderr.startswith(b"pipefile: f: ERANGE"), p.stderr
    assert not (workdir / "out").exists()
    # offset == size is an empty body, not an error
    p = runner.cli(None, "-s", daemon.sock, "get", "f", "--offset", "10")
    assert (p.returncode, p.stdout) == (0, b""), p.stderr


def test_eproto_15(runner, workdir):
    path = str(workdir / "fake.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(1)
    lsock.settimeout(30)
    got = {}

    def serve():
        c, _ = lsock.accept()
        with c:
            c.settimeout(30)
            hdr = b""
            while len(hdr) < 22:
                hdr += c.recv(22 - len(hdr))
            plen = struct.unpack(">H", hdr[4:6])[0]
            body = b""
            while len(body) < plen:
                body += c.recv(plen - len(body))
            got["path"] = body
            msg = b"EPROTO: malformed request"
            c.sendall(struct.pack(">2sBBHHQqQ", b"pf", 1, 5, len(msg), 0, 0, 0, 0) + msg)

    t = threading.Thread(target=serve)
    t.start()
    try:
        p = runner.cli(None, "-s", path, "get", "x")
    finally:
        t.join(30)
        lsock.close()
    assert got.get("path") == b"x"
    assert p.returncode == 15, p.stderr
    assert p.stderr == b"pipefile: x: EPROTO: malformed request\n"


def test_eio_17_and_short_body_76(daemon, runner, workdir):
    need(_loop_usable(), "needs root and loop devices (mkfs.ext2, debugfs, losetup)")
    mnt = _failing_disk(workdir)
    try:
        daemon.set("server", "root", str(mnt))
        daemon.start()
        p = runner.cli(None, "-s", daemon.sock, "get", "bad/f")
        assert p.returncode == 17, p.stderr
        assert p.stderr.startswith(b"pipefile: bad/f: EIO"), p.stderr
        # The read fails after the header: a short body, and -o leaves nothing.
        p = runner.cli(None, "-s", daemon.sock, "get", "partial.bin", "-o",
                       workdir / "out")
        assert p.returncode == 76, p.stderr
        assert not (workdir / "out").exists()
        assert not [f for f in workdir.iterdir() if f.name.startswith(".out")]
        assert daemon.stop() == 0
    finally:
        if daemon.running():
            daemon.stop()
        _umount(mnt)

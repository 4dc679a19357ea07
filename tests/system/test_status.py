"""Every status provoked for real (EPROTO: test_malformed.py, EBUSY:
test_limits.py, EPERM: test_policy.py / test_unprivileged.py, EACCES:
test_identity.py, ERANGE: test_range.py): ENOENT, ENOTREG for a directory,
the root, a FIFO (without hanging), a socket and a device, EXDEV for ".."
and escaping symlinks while inside symlinks work, EIO from a failing disk,
and a short body when the file shrinks or a read fails mid-transfer."""

import os
import shutil
import socket
import stat
import subprocess

import pytest

import pfp
from conftest import need, need_root


def assert_status(r, name):
    assert r.problems() == [], r.problems()
    assert r.name == name, r
    assert r.message.startswith(name + ": "), r.message
    assert (r.size, r.mtime, r.body_len) == (0, 0, 0)


@pytest.mark.parametrize("path", ["missing", "no/such/dir/file", "/missing", "dir/missing"])
def test_enoent(daemon, path):
    daemon.mkdir("dir")
    daemon.start()
    with daemon.conn() as c:
        assert_status(c.get(path), "ENOENT")
        assert_status(c.stat(path), "ENOENT")
        # the connection stays usable
        assert c.get("dir").name == "ENOTREG"


def test_enoent_below_a_regular_file(daemon):
    daemon.put("file", b"x")
    daemon.start()
    # open() says ENOTDIR; for the client that is "no such file".
    assert_status(daemon.get("file/child"), "ENOENT")


@pytest.mark.parametrize("path", ["dir", "dir/", "/", "//", "/.", ".", "dir/..", "dir/sub"])
def test_enotreg_directory(daemon, path):
    daemon.mkdir("dir/sub")
    daemon.start()
    with daemon.conn() as c:
        assert_status(c.get(path), "ENOTREG")
        assert_status(c.stat(path), "ENOTREG")


def test_enotreg_fifo_does_not_hang(daemon):
    """A FIFO with no writer would block a plain open() forever; with one
    worker, a hung worker would also stall the next request."""
    os.mkfifo(daemon.root / "fifo", 0o666)
    daemon.put("ok", b"fine")
    daemon.set("server", "workers", "1")
    daemon.start()
    for _ in range(3):
        with daemon.conn(timeout=5) as c:
            assert_status(c.get("fifo"), "ENOTREG")
            assert_status(c.stat("fifo"), "ENOTREG")
        with daemon.conn(timeout=5) as c:
            assert c.get("ok").body == b"fine"


def test_enotreg_fifo_with_writer(daemon):
    os.mkfifo(daemon.root / "fifo", 0o666)
    daemon.start()
    rfd = os.open(daemon.root / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(daemon.root / "fifo", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(wfd, b"data in the pipe")
        with daemon.conn(timeout=5) as c:
            assert_status(c.get("fifo"), "ENOTREG")
    finally:
        os.close(wfd)
        os.close(rfd)


def test_enotreg_socket_file(daemon):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(daemon.root / "sockfile"))
    os.chmod(daemon.root / "sockfile", 0o666)
    try:
        daemon.start()
        with daemon.conn(timeout=5) as c:
            assert_status(c.get("sockfile"), "ENOTREG")
            assert_status(c.stat("sockfile"), "ENOTREG")
    finally:
        s.close()


def test_enotreg_device(daemon):
    need_root()
    os.mknod(daemon.root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    daemon.start()
    with daemon.conn(timeout=5) as c:
        assert_status(c.get("null"), "ENOTREG")
        assert_status(c.stat("null"), "ENOTREG")


@pytest.mark.parametrize("path", [
    "..", "../", "../outside.txt", "/../outside.txt", "sub/../../outside.txt",
    "sub/../../root/inside.txt", "./../outside.txt", "sub/x/../../../outside.txt",
    "//..//outside.txt",
])
def test_exdev_dotdot(daemon, path):
    (daemon.dir / "outside.txt").write_bytes(b"secret outside the root")
    daemon.put("inside.txt", b"inside")
    daemon.mkdir("sub")
    daemon.start()
    with daemon.conn() as c:
        assert_status(c.get(path), "EXDEV")
        assert_status(c.stat(path), "EXDEV")
        assert c.get("inside.txt").body == b"inside"  # still usable


@pytest.mark.parametrize("link,target,wire", [
    ("rel_escape", "../outside.txt", "rel_escape"),
    ("deep_escape", "../../../../../../../../etc/passwd", "deep_escape"),
    ("abs_escape", None, "abs_escape"),            # absolute -> outside file
    ("abs_etc", "/etc/passwd", "abs_etc"),
    ("updir", "..", "updir/outside.txt"),         # a directory symlink escaping
    ("sub/up2", "../..", "sub/up2/outside.txt"),
    ("proc_self", "/proc/self/root/etc/passwd", "proc_self"),
])
def test_exdev_escaping_symlink(daemon, link, target, wire):
    outside = daemon.dir / "outside.txt"
    outside.write_bytes(b"secret outside the root")
    daemon.mkdir("sub")
    os.symlink(target if target is not None else str(outside), daemon.root / link)
    daemon.start()
    with daemon.conn() as c:
        r = c.get(wire)
        assert b"secret" not in (r.body or b"")
        assert_status(r, "EXDEV")
        assert_status(c.stat(wire), "EXDEV")


@pytest.mark.parametrize("link,target,wire", [
    ("l_file", "target.txt", "l_file"),
    ("sub/l_up", "../target.txt", "sub/l_up"),
    ("l_chain1", "l_chain2", "l_chain1"),
    ("l_dir", "sub", "l_dir/in_sub.txt"),
    ("sub/l_dotdot_in", "../sub/./in_sub.txt", "sub/l_dotdot_in"),
])
def test_symlink_inside_root_works(daemon, link, target, wire):
    daemon.put("target.txt", b"the target")
    daemon.put("sub/in_sub.txt", b"in sub")
    os.symlink("target.txt", daemon.root / "l_chain2")
    os.symlink(target, daemon.root / link)
    daemon.start()
    want = b"in sub" if "in_sub" in target or link == "l_dir" else b"the target"
    r = daemon.get(wire)
    assert (r.name, r.body) == ("OK", want)


def test_symlink_to_directory_is_enotreg(daemon):
    daemon.mkdir("sub")
    os.symlink("sub", daemon.root / "l_sub")
    daemon.start()
    assert_status(daemon.get("l_sub"), "ENOTREG")


# ---------------------------------------------------------------- EIO

def _loop_usable():
    if os.geteuid() != 0:
        return False
    for tool in ("mkfs.ext2", "debugfs", "losetup", "mount", "umount"):
        if shutil.which(tool) is None:
            return False
    p = subprocess.run(["losetup", "-f"], capture_output=True)
    return p.returncode == 0 and os.path.exists("/dev/loop-control")


def _failing_disk(workdir):
    """An ext2 image on a loop device whose backing file is cut short after
    mounting: reads past the cut fail in the block layer with EIO. The
    directory bad/ has its data block moved past the cut (its inode stays
    readable), so opening bad/f fails with EIO; partial.bin (30 MiB) starts
    before the cut and ends after it, so reading it fails midway."""
    src = workdir / "eio-src"
    (src / "bad").mkdir(parents=True)
    (src / "good.txt").write_bytes(b"fine\n")
    (src / "bad" / "f").write_bytes(b"unreachable\n")
    with open(src / "partial.bin", "wb") as f:
        f.write(os.urandom(30 << 20))
    for p in src.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(src, 0o755)
    img = workdir / "disk.img"
    with open(img, "wb") as f:
        f.truncate(48 << 20)
    subprocess.run(["mkfs.ext2", "-q", "-F", "-b", "1024", "-d", str(src), str(img)],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["debugfs", "-w", "-R", "sif /bad block[0] 45000", str(img)],
                   check=True, capture_output=True, timeout=60)
    mnt = workdir / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop,ro", str(img), str(mnt)], check=True,
                   capture_output=True, timeout=60)
    with open(img, "r+b") as f:
        f.truncate(24 << 20)
    return mnt


def _umount(mnt):
    p = subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60)
    if p.returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)


@pytest.mark.pf_timeout(180)
def test_eio_from_a_failing_disk(daemon, workdir):
    need(_loop_usable(), "needs root and loop devices (mkfs.ext2, debugfs, losetup)")
    mnt = _failing_disk(workdir)
    try:
        with pytest.raises(OSError) as e:
            os.open(mnt / "bad" / "f", os.O_RDONLY)
        assert e.value.errno == 5, "the disk does not fail as planned: %s" % e.value
        daemon.set("server", "root", str(mnt))
        daemon.start()
        with daemon.conn() as c:
            assert c.get("good.txt").body == b"fine\n"
            assert_status(c.get("bad/f"), "EIO")
            assert_status(c.stat("bad/f"), "EIO")
            # EIO leaves the connection usable
            assert c.get("good.txt").body == b"fine\n"
        # A read error after the header: the daemon closes the connection
        # short of body_len, and stays healthy.
        with daemon.conn(timeout=30) as c:
            c.send(pfp.get_request("partial.bin"))
            r = c.read_header()
            assert (r.name, r.body_len) == ("OK", 30 << 20)
            with pytest.raises(pfp.ShortBody):
                c.read_body(r, keep=False)
            assert r.received < r.body_len
        assert daemon.get("good.txt").body == b"fine\n"
        assert daemon.stop() == 0
    finally:
        if daemon.running():
            daemon.stop()
        _umount(mnt)


@pytest.mark.pf_timeout(120)
def test_file_shrinking_mid_transfer_closes_connection(daemon):
    size = 64 << 20
    p = daemon.put("shrink.bin", os.urandom(size))
    daemon.put("ok", b"ok")
    daemon.start()
    with daemon.conn(timeout=20) as c:
        c.send(pfp.get_request("shrink.bin"))
        r = c.read_header()
        assert (r.name, r.body_len) == ("OK", size)
        c.read_body(r, keep=False, limit=1 << 20)
        os.truncate(p, 2 << 20)
        r.body_len = size - (1 << 20)
        with pytest.raises(pfp.ShortBody) as e:
            c.read_body(r, keep=False)
        assert e.value.resp.received < size - (1 << 20)
    assert daemon.get("ok").body == b"ok"
    assert daemon.stop() == 0
    lines = [l for l in daemon.log_lines() if b"shrink.bin" in l]
    assert len(lines) == 1
    sent = int(lines[0].split(b" bytes=")[1].split(b" ")[0])
    assert (1 << 20) <= sent < size, lines[0]

"""The socket file and start-up: a stale socket is replaced, a live one never
stolen ("in use by pid N"), a non-socket never removed; the socket gets its
configured mode and group, never more open on the way; path and root errors
stop start-up with one clear line."""

import grp
import os
import socket
import stat
import threading

import pytest

from conftest import GID_SHARED, USER_A, USER_B, USER_C, connect_error, need, need_root


def start_fails(d, timeout=10):
    """Start d expecting it to exit non-zero; returns (rc, stderr)."""
    d.expect_exit = True
    d.start(wait=False)
    rc = d.wait_exit(timeout)
    assert rc is not None, "pipefiled did not exit:\n" + d.stderr()
    assert rc != 0, d.stderr()
    return rc, d.stderr()


def test_stale_socket_is_replaced(daemon):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(daemon.sock))
    s.close()  # the file stays; nobody listens
    assert stat.S_ISSOCK(os.lstat(daemon.sock).st_mode)
    assert connect_error(daemon.sock) != 0
    daemon.put("f", b"x")
    daemon.start()
    assert daemon.get("f").body == b"x"


def test_live_socket_is_never_stolen(make_daemon):
    first = make_daemon()
    first.put("f", b"first")
    first.start()
    ino = os.lstat(first.sock).st_ino
    second = make_daemon()
    second.set("server", "socket", str(first.sock))
    rc, err = start_fails(second)
    assert "in use by pid %d" % first.proc.pid in err, err
    assert os.lstat(first.sock).st_ino == ino
    assert first.get("f").body == b"first"
    assert first.stop() == 0
    assert not first.sock.exists()


def test_non_socket_at_socket_path_is_never_removed(daemon):
    daemon.sock.write_bytes(b"precious")
    rc, err = start_fails(daemon)
    assert "socket %s: a regular file owned by uid %d is already there" % (
        daemon.sock, os.geteuid()) in err, err
    assert daemon.sock.read_bytes() == b"precious"


def test_own_stale_socket_in_sticky_dir_is_replaced(workdir, daemon):
    """A socket of the daemon's own uid that nobody listens on is its own
    leftover, in a sticky directory too."""
    sticky = workdir / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    daemon.sock = sticky / "pf.sock"
    daemon.set("server", "socket", str(daemon.sock))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(daemon.sock))
    s.close()
    assert connect_error(daemon.sock) != 0
    daemon.put("f", b"x")
    daemon.start()
    assert daemon.get("f").body == b"x"
    assert daemon.stop() == 0
    assert not daemon.sock.exists()


def test_directory_at_socket_path_is_refused(daemon):
    daemon.sock.mkdir()
    rc, err = start_fails(daemon)
    assert daemon.sock.is_dir()


@pytest.mark.parametrize("mode", ["0600", "0660", "0666", "0700", "0640"])
def test_socket_mode(daemon, mode):
    daemon.set("server", "socket_mode", mode)
    daemon.start()
    st = os.lstat(daemon.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == int(mode, 8)
    assert st.st_uid == os.geteuid()


def test_socket_mode_and_group_decide_who_connects(daemon, runner):
    need_root()
    daemon.put("f", b"x")
    daemon.set("server", "socket_mode", "0660")
    daemon.set("server", "socket_group", str(GID_SHARED))
    daemon.start()
    st = os.lstat(daemon.sock)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, GID_SHARED)
    res_b = runner.pfp(USER_B, daemon.sock, "get", "f")  # in the group
    assert res_b[0]["name"] == "OK", res_b
    res_c = runner.pfp(USER_C, daemon.sock, "get", "f")  # not in it
    assert res_c[0].get("errno") == 13, res_c
    p = runner.cli(USER_C, "-s", daemon.sock, "get", "f")
    assert p.returncode == 69, p.stderr
    assert p.stderr.startswith(b"pipefile: f: "), p.stderr


def test_socket_group_in_set_group_id_dir(workdir, daemon):
    """A set-group-id directory would give the socket its own group: the
    configured one wins."""
    need_root()
    d = workdir / "sgid"
    d.mkdir()
    os.chown(d, 0, USER_C.gid)
    os.chmod(d, 0o2755)
    daemon.sock = d / "pf.sock"
    daemon.set("server", "socket", str(daemon.sock))
    daemon.set("server", "socket_mode", "0660")
    daemon.set("server", "socket_group", str(GID_SHARED))
    daemon.start()
    st = os.lstat(daemon.sock)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, GID_SHARED)


def test_default_acl_only_narrows_the_mode(workdir, daemon):
    """The mode is set at creation, not by a chmod afterwards: a default ACL
    on the socket's directory that gives others nothing narrows the socket
    (with a warning) instead of being overridden."""
    import struct
    d = workdir / "acl"
    d.mkdir()
    os.chmod(d, 0o755)
    # system.posix_acl_default: version 2, then (tag, perm, id): user::rwx,
    # group::rwx, other::---
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xFFFFFFFF)
                                          for tag, perm in ((0x01, 7), (0x04, 7), (0x20, 0)))
    try:
        os.setxattr(d, "system.posix_acl_default", acl)
    except OSError as e:
        need(False, "needs POSIX ACLs on %s: %s" % (d, e))
    daemon.sock = d / "pf.sock"
    daemon.set("server", "socket", str(daemon.sock))
    daemon.set("server", "socket_mode", "0666")
    daemon.start()
    assert stat.S_IMODE(os.lstat(daemon.sock).st_mode) == 0o660
    assert "warning: socket %s: created with mode 0660, not 0666: a default ACL" % daemon.sock \
        in daemon.stderr(), daemon.stderr()


def test_socket_group_by_name(daemon):
    need_root()
    try:
        name = grp.getgrgid(65534).gr_name
    except KeyError:
        name = None
    need(name is not None, "needs a group 65534 with a name (nogroup)")
    daemon.set("server", "socket_group", name)
    daemon.start()
    assert os.lstat(daemon.sock).st_gid == 65534


def test_socket_mode_0600_keeps_others_out(daemon, runner):
    need_root()
    daemon.set("server", "socket_mode", "0600")
    daemon.put("f", b"x")
    daemon.start()
    assert runner.pfp(USER_A, daemon.sock, "get", "f")[0].get("errno") == 13
    assert daemon.get("f").body == b"x"


def test_socket_never_more_open_than_configured(daemon):
    """Watch the socket path while the daemon starts: no moment where it is
    more open (mode or group) than configured."""
    need_root()
    daemon.set("server", "socket_mode", "0660")
    daemon.set("server", "socket_group", str(GID_SHARED))
    seen = set()
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                st = os.lstat(daemon.sock)
                seen.add((stat.S_IMODE(st.st_mode), st.st_gid))
            except FileNotFoundError:
                pass

    for _ in range(5):
        t = threading.Thread(target=watch)
        t.start()
        try:
            daemon.start()
        finally:
            stop.set()
            t.join(10)
        assert daemon.stop() == 0
        stop.clear()
    too_open = {(m, g) for m, g in seen if m & ~0o660 or (m & 0o070 and g != GID_SHARED)}
    assert not too_open, "socket seen as %r" % sorted((oct(m), g) for m, g in too_open)


def test_socket_removed_on_stop(daemon):
    daemon.start()
    assert daemon.sock.exists()
    assert daemon.stop() == 0
    assert not daemon.sock.exists()


def test_socket_path_too_long(workdir, daemon):
    long_dir = workdir / ("x" * 60) / ("y" * 40)
    long_dir.mkdir(parents=True)
    sock = long_dir / "pf.sock"
    assert len(str(sock)) > 107
    daemon.set("server", "socket", str(sock))
    rc, err = start_fails(daemon)
    assert "socket" in err and ("long" in err or "107" in err or "108" in err), err
    assert len([l for l in err.splitlines() if "error" in l]) == 1, err
    assert not sock.exists()


def test_socket_path_of_107_bytes_works(workdir, daemon):
    base = str(workdir / "s")
    name = base + "z" * (107 - len(base))
    assert len(name) == 107
    daemon.set("server", "socket", name)
    daemon.sock = type(daemon.sock)(name)
    daemon.put("f", b"x")
    daemon.start()
    assert daemon.get("f").body == b"x"


def test_socket_directory_missing(workdir, daemon):
    sock = workdir / "no" / "such" / "dir" / "pf.sock"
    daemon.set("server", "socket", str(sock))
    rc, err = start_fails(daemon)
    assert str(sock.parent) in err or str(sock) in err, err


@pytest.mark.parametrize("kind", ["missing", "file", "relative"])
def test_bad_root(workdir, daemon, kind):
    if kind == "missing":
        root = str(workdir / "no-such-root")
    elif kind == "file":
        root = str(workdir / "a-file")
        (workdir / "a-file").write_bytes(b"x")
    else:
        root = "relative/root"
    daemon.set("server", "root", root)
    rc, err = start_fails(daemon)
    assert root in err or "[server] root" in err, err
    assert not daemon.sock.exists()
    assert err.strip().count("\n") <= 1, "expected one clear line:\n" + err


def test_ready_line(daemon):
    daemon.set("server", "workers", "3")
    daemon.start()
    line = [l for l in daemon.stderr().splitlines() if "ready:" in l][0]
    assert line.startswith("pipefiled: info: ready: serving %s on %s with 3 workers (" %
                           (daemon.root, daemon.sock)), line


def test_ready_line_names_the_identity_mode(daemon):
    need_root()  # with CAP_SETUID/CAP_SETGID (the unprivileged mode: test_unprivileged.py)
    daemon.start()
    line = [l for l in daemon.stderr().splitlines() if "ready:" in l][0]
    assert "switching identity per request" in line, line

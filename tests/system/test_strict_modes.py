"""Files the daemon creates are created safely, or it refuses to start
(issue 5): the socket's directory and the access log's directory, and every
ancestor, must be owned by root or the daemon's user and not group/other-
writable unless sticky (`strict_modes = no` makes that a warning); a symbolic
link on the way, or at the log's path, is never followed; an entry at the
socket's path that the daemon did not leave is never replaced; a log reopened
on SIGHUP/SIGUSR1 follows the same rules."""

import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import (CHILD_ENV, GID_SHARED, PY, UID_A, USER_A, connect_error,
                      listening, need_root, wait_for)

STRICT_HINT = "refusing (strict_modes = no to override)"
LAX_NOTE = "continuing because strict_modes = no"


def start_fails(d, timeout=10):
    """Start d expecting it to exit non-zero on its own; returns stderr."""
    d.expect_exit = True
    d.start(wait=False)
    rc = d.wait_exit(timeout)
    assert rc is not None, "pipefiled did not exit:\n" + d.stderr()
    assert rc != 0, d.stderr()
    err = d.stderr()
    errors = [l for l in err.splitlines() if l.startswith("pipefiled: error:")]
    assert len(errors) == 1, "expected one clear error line:\n" + err
    return errors[0]


def make_dir(path, mode=0o755, uid=0, gid=0):
    path = Path(path)
    path.mkdir()
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def secret_file(path):
    """A root-owned 0600 file an attacker would like the daemon to touch."""
    path = Path(path)
    path.write_bytes(b"root's own\n")
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    return path


def unchanged(path):
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert Path(path).read_bytes() == b"root's own\n"


def use_socket(d, path):
    d.sock = Path(path)
    d.set("server", "socket", str(d.sock))


def as_user(user, code, *args, timeout=20):
    """Run a few lines of Python as user (setpriv); fails if they fail."""
    p = subprocess.run(user.setpriv() + [PY, "-I", "-c", code] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                       env=CHILD_ENV, cwd="/")
    assert p.returncode == 0, p.stderr.decode(errors="replace")


BIND = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
if sys.argv[2] == "live":
    s.listen(8)
    print("ready", flush=True)
    time.sleep(120)
"""


# ------------------------------------------------------------- the socket

@pytest.mark.parametrize("who", ["root", "other_uid"])
def test_symlink_at_socket_path_is_refused(daemon, workdir, who):
    """The deterministic form of the chmod race: a symlink where the socket
    will be. The daemon refuses by name and owner; the file it points to keeps
    its mode (the old code chmod'ed through such a link)."""
    target = secret_file(workdir / "target")
    if who == "root":
        os.symlink(target, daemon.sock)
        owner = 0
    else:
        need_root()
        sticky = make_dir(workdir / "sticky", 0o1777)
        use_socket(daemon, sticky / "pf.sock")
        as_user(USER_A, "import os, sys; os.symlink(sys.argv[1], sys.argv[2])",
                target, daemon.sock)
        owner = UID_A
    err = start_fails(daemon)
    assert "socket %s: a symbolic link owned by uid %d is already there" % (
        daemon.sock, owner) in err, err
    assert "not removing it" in err, err
    assert os.path.islink(daemon.sock)
    unchanged(target)


def test_socket_dir_owned_by_another_uid_is_refused(daemon, workdir):
    need_root()
    theirs = make_dir(workdir / "theirs", 0o755, UID_A, UID_A)
    use_socket(daemon, theirs / "pf.sock")
    err = start_fails(daemon)
    assert err == ("pipefiled: error: socket directory %s: owned by uid %d, not root or "
                   "pipefiled's user; %s" % (theirs, UID_A, STRICT_HINT)), err
    assert os.listdir(theirs) == []


def test_socket_dir_owned_by_another_uid_with_strict_modes_no(daemon, workdir):
    need_root()
    theirs = make_dir(workdir / "theirs", 0o755, UID_A, UID_A)
    use_socket(daemon, theirs / "pf.sock")
    daemon.set("server", "strict_modes", "no")
    daemon.set("server", "socket_mode", "0660")
    daemon.put("f", b"served anyway\n")
    daemon.start()
    warn = "pipefiled: warning: socket directory %s: owned by uid %d, not root or " \
           "pipefiled's user; %s" % (theirs, UID_A, LAX_NOTE)
    assert warn in daemon.stderr().splitlines(), daemon.stderr()
    assert daemon.get("f").body == b"served anyway\n"
    assert stat.S_IMODE(os.lstat(daemon.sock).st_mode) == 0o660
    assert daemon.stop() == 0
    assert not daemon.sock.exists()


@pytest.mark.parametrize("mode,who", [(0o775, "group"), (0o757, "others"),
                                      (0o777, "group and others")])
def test_writable_socket_dir_is_refused(daemon, workdir, mode, who):
    opendir = make_dir(workdir / "open", mode)
    use_socket(daemon, opendir / "pf.sock")
    err = start_fails(daemon)
    assert err == ("pipefiled: error: socket directory %s: writable by %s (mode %04o) "
                   "without the sticky bit; %s" % (opendir, who, mode, STRICT_HINT)), err
    assert os.listdir(opendir) == []


def test_writable_ancestor_is_refused(daemon, workdir):
    opendir = make_dir(workdir / "open", 0o777)
    sub = make_dir(opendir / "sub", 0o755)
    use_socket(daemon, sub / "pf.sock")
    err = start_fails(daemon)
    assert "socket directory %s: its ancestor %s is writable by group and others " \
           "(mode 0777) without the sticky bit; %s" % (sub, opendir, STRICT_HINT) in err, err
    assert os.listdir(sub) == []


def test_sticky_dir_is_fine(daemon, workdir):
    """Like /tmp: nobody can rename or remove the daemon's entry there."""
    sticky = make_dir(workdir / "sticky", 0o1777)
    use_socket(daemon, sticky / "pf.sock")
    daemon.set("server", "socket_mode", "0600")
    daemon.put("f", b"x")
    daemon.start()
    assert "warning" not in daemon.stderr(), daemon.stderr()
    assert daemon.get("f").body == b"x"
    st = os.lstat(daemon.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600


@pytest.mark.parametrize("state", ["stale", "live"])
def test_other_uids_socket_in_sticky_dir_is_refused(daemon, workdir, runner, state):
    """In a sticky directory another user can bind first at our path. Their
    socket is refused by name and owner and left alone, even when nobody
    listens on it (the old code took it for our own stale socket)."""
    need_root()
    sticky = make_dir(workdir / "sticky", 0o1777)
    use_socket(daemon, sticky / "pf.sock")
    proc = None
    if state == "stale":
        as_user(USER_A, BIND, daemon.sock, "stale")
    else:
        proc = subprocess.Popen(USER_A.setpriv() + [PY, "-I", "-c", BIND, str(daemon.sock), "live"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                env=CHILD_ENV, cwd="/")
        runner.procs.append(proc)
        assert proc.stdout.readline() == b"ready\n"
    before = os.lstat(daemon.sock)
    assert stat.S_ISSOCK(before.st_mode) and before.st_uid == UID_A
    try:
        err = start_fails(daemon)
    finally:
        if proc is not None:
            live = connect_error(daemon.sock) == 0
            proc.kill()
            proc.wait(10)
    assert "socket %s: a socket owned by uid %d is already there, not a socket " \
           "pipefiled left; not removing it" % (daemon.sock, UID_A) in err, err
    after = os.lstat(daemon.sock)
    assert (after.st_ino, after.st_uid) == (before.st_ino, UID_A)
    if proc is not None:
        assert live, "their listener was disturbed"


@pytest.mark.parametrize("via", ["link", "link/sub"])
def test_symlinked_parent_is_refused(daemon, workdir, via):
    """A socket path through a symlinked directory: refused, with the real
    path suggested, and nothing done in the directory it points to; in
    particular a stale socket there is not removed (the old code removed it
    and bound its own)."""
    real = make_dir(workdir / "real", 0o755)
    make_dir(real / "sub", 0o755)
    os.symlink(real, workdir / "link")
    sock = workdir / via / "pf.sock"
    stale = real / Path(via).relative_to("link") / "pf.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    ino = os.lstat(stale).st_ino
    use_socket(daemon, sock)
    err = start_fails(daemon)
    if via == "link":
        assert "socket directory %s: a symbolic link; refusing to follow it (use the " \
               "real path, %s)" % (workdir / "link", real) in err, err
    else:
        assert "socket directory %s: its ancestor %s is a symbolic link; refusing to " \
               "follow it (use the real path, %s)" % (workdir / "link" / "sub",
                                                     workdir / "link", real / "sub") in err, err
    assert os.lstat(stale).st_ino == ino
    assert not listening(stale) and not listening(sock)


def test_socket_mode_and_group_right_after_ready(daemon, workdir):
    """Started under umask 077 in a socket directory the daemon creates: the
    directory is 0755, the socket has exactly the configured mode and group
    as soon as the daemon is ready."""
    need_root()
    wrapper = workdir / "umask077"
    wrapper.write_text("#!/bin/sh\numask 077\nexec %s \"$@\"\n" % daemon.binary)
    os.chmod(wrapper, 0o755)
    daemon.binary = wrapper
    use_socket(daemon, daemon.dir / "run" / "pf.sock")
    daemon.set("server", "socket_mode", "0660")
    daemon.set("server", "socket_group", str(GID_SHARED))
    daemon.start()
    st = os.lstat(daemon.sock)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o660, 0, GID_SHARED)
    dst = os.lstat(daemon.sock.parent)
    assert (stat.S_IMODE(dst.st_mode), dst.st_uid) == (0o755, 0)


# ----------------------------------------------------------- the access log

def test_access_log_symlink_is_refused_at_start(daemon, workdir):
    target = secret_file(workdir / "target")
    os.symlink(target, daemon.access_log)
    err = start_fails(daemon)
    assert err == "pipefiled: error: access_log: log file %s: a symbolic link; " \
                  "refusing to follow it" % daemon.access_log, err
    unchanged(target)
    assert os.path.islink(daemon.access_log)
    assert not daemon.sock.exists()


@pytest.mark.parametrize("kind", ["other_uid", "writable"])
def test_unsafe_log_dir_is_refused(daemon, workdir, kind):
    if kind == "other_uid":
        need_root()
        logdir = make_dir(workdir / "logs", 0o755, UID_A, UID_A)
        why = "owned by uid %d, not root or pipefiled's user" % UID_A
    else:
        logdir = make_dir(workdir / "logs", 0o777)
        why = "writable by group and others (mode 0777) without the sticky bit"
    log = logdir / "access.log"
    daemon.set("log", "access_log", str(log))
    err = start_fails(daemon)
    assert err == "pipefiled: error: access_log: log directory %s: %s; %s" % (
        logdir, why, STRICT_HINT), err
    assert os.listdir(logdir) == []
    assert not daemon.sock.exists()

    # strict_modes = no: a warning, and the log is written
    daemon.expect_exit = False
    daemon.set("server", "strict_modes", "no")
    daemon.put("f", b"x")
    daemon.start()
    assert "pipefiled: warning: log directory %s: %s; %s" % (logdir, why, LAX_NOTE) \
        in daemon.stderr(), daemon.stderr()
    assert daemon.get("f").name == "OK"
    wait_for(lambda: log.exists() and b"status=OK" in log.read_bytes(), 10, "a log line")
    assert stat.S_IMODE(os.lstat(log).st_mode) & 0o022 == 0


@pytest.mark.parametrize("kind", ["group_writable", "other_uid", "hard_link"])
def test_unsafe_existing_log_file_is_refused(daemon, workdir, kind):
    if kind == "hard_link":
        target = secret_file(workdir / "target")
        os.link(target, daemon.access_log)
        why = "a file with 2 hard links"
    else:
        daemon.access_log.write_bytes(b"")
        if kind == "group_writable":
            os.chmod(daemon.access_log, 0o664)
            why = "writable by group (mode 0664)"
        else:
            need_root()
            os.chown(daemon.access_log, UID_A, UID_A)
            os.chmod(daemon.access_log, 0o644)
            why = "owned by uid %d, not root or pipefiled's user" % UID_A
    err = start_fails(daemon)
    assert err == "pipefiled: error: access_log: log file %s: %s; %s" % (
        daemon.access_log, why, STRICT_HINT), err
    if kind == "hard_link":
        unchanged(target)
    else:
        assert daemon.access_log.read_bytes() == b""


def test_new_access_log_is_0640(daemon, workdir):
    """Created 0640 even when the daemon's umask is 0."""
    wrapper = workdir / "umask0"
    wrapper.write_text("#!/bin/sh\numask 0\nexec %s \"$@\"\n" % daemon.binary)
    os.chmod(wrapper, 0o755)
    daemon.binary = wrapper
    daemon.start()
    st = os.lstat(daemon.access_log)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1])
def test_reopen_refuses_a_symlinked_log(daemon, workdir, sig):
    """Rotation, then someone puts a symlink where the new log would be: the
    reopen is refused with an error line, the daemon goes on writing to the
    file it has, and the link's target is untouched."""
    target = secret_file(workdir / "target")
    daemon.put("f", b"x")
    daemon.start()
    assert daemon.get("f").name == "OK"
    wait_for(lambda: len(daemon.log_lines()) == 1, 10, "the first line")
    rotated = daemon.dir / "access.log.1"
    os.rename(daemon.access_log, rotated)
    os.symlink(target, daemon.access_log)
    daemon.kill(sig)
    refused = "log file %s: a symbolic link; refusing to follow it" % daemon.access_log
    wait_for(lambda: [l for l in daemon.stderr().splitlines()
                      if l.startswith("pipefiled: error:") and "cannot reopen" in l and
                      refused in l], 10, "the refused reopen")
    for _ in range(2):
        assert daemon.get("f").name == "OK"
    wait_for(lambda: len(rotated.read_bytes().splitlines()) == 3, 10,
             "3 lines in the file the daemon kept")
    unchanged(target)
    assert os.path.islink(daemon.access_log)
    assert daemon.running()
    assert daemon.stop() == 0
    unchanged(target)

"""Identity switches are confirmed, not assumed: setfsuid reports failure
badly (it returns the old value either way), so pipefiled reads every switch
back. Here the kernel refuses the switch while the daemon holds CAP_SETUID
and CAP_SETGID: the daemon runs as root of a user namespace that maps uid 0
only (every gid is mapped, so groups and fsgid do switch). Its start-up
probe must see that setfsuid did not take and refuse to start: served
anyway, every client would open files as uid 0."""

import os
import signal
import subprocess

import pytest

from conftest import PY, SETPRIV, need, need_root

# Forks; the child enters a new user namespace and waits until the parent
# (root outside) has written its maps, then execs argv. Exits with the
# child's status.
NS_HELPER = r"""
import ctypes, os, sys
CLONE_NEWUSER = 0x10000000
libc = ctypes.CDLL(None, use_errno=True)
r, w = os.pipe()
r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r); os.close(w2)
    if libc.unshare(CLONE_NEWUSER) != 0:
        os.write(2, b"unshare(CLONE_NEWUSER) failed\n")
        os._exit(99)
    os.write(w, b"x"); os.close(w)
    os.read(r2, 1)
    os.execv(sys.argv[1], sys.argv[1:])
os.close(w); os.close(r2)
os.read(r, 1)
with open("/proc/%d/uid_map" % pid, "w") as f:
    f.write("0 0 1\n")
with open("/proc/%d/setgroups" % pid, "w") as f:
    f.write("allow")
with open("/proc/%d/gid_map" % pid, "w") as f:
    f.write("0 0 4294967295\n")
os.write(w2, b"x")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _userns_usable():
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            return int(f.read()) > 0
    except (OSError, ValueError):
        return False


def _userns_refused():
    """Whether the kernel refuses this process a user namespace (EPERM): it
    does for a chrooted process (user_namespaces(7)), such as the suite run
    by the fresh-Debian check, whatever is installed. Tried in a child."""
    import ctypes
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.unshare(0x10000000)  # CLONE_NEWUSER
        os._exit(0 if rc == 0 else (1 if ctypes.get_errno() == 1 else 2))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 1


def test_fsuid_switch_that_does_not_take_refuses_start(daemon):
    need_root()
    if _userns_refused():
        pytest.skip("the kernel refuses this process a user namespace (EPERM: a chroot?)")
    need(_userns_usable(), "needs user namespaces (user.max_user_namespaces > 0)")
    daemon.set("identity", "serve_root_clients", "yes")
    daemon.write_ini()
    # Only CAP_SETUID and CAP_SETGID: no CAP_DAC_OVERRIDE that a later check
    # would also notice, so the read-back alone stands between a switch that
    # failed and a daemon that serves as root.
    argv = [PY, "-I", "-c", NS_HELPER, SETPRIV, "--bounding-set=-all,+setuid,+setgid",
            "--inh-caps=-all", "--", str(daemon.binary), "-c", str(daemon.ini)]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=str(daemon.dir), start_new_session=True)
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=10)
        raise AssertionError("pipefiled started although its fsuid switch does not take:\n%s"
                             % err.decode(errors="replace"))
    err = err.decode(errors="replace")
    assert "unshare(CLONE_NEWUSER) failed" not in err, err
    assert p.returncode == 1, (p.returncode, err)
    assert "pipefiled: error: refusing to start: setfsuid/setfsgid/setgroups did not take" \
        in err, err
    assert "ready:" not in err, err
    assert not daemon.sock.exists()

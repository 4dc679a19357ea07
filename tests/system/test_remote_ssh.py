"""A user on another machine, through OpenSSH (docs/remote.md).

A real sshd (Debian's openssh-server) runs on 127.0.0.1 at a free high port
with a throwaway host key, its own sshd_config and a throwaway user (sshd
needs a passwd entry with a shell: the suite's synthetic uids have none) who
logs in with a throwaway key. Through `ssh -N -L local.sock:daemon.sock` the
user gets their own 0600 file, is refused another uid's, and the access log
names the user's uid and, as the peer, a process of that sshd: sshd's per-user
session process makes the connection, so SO_PEERCRED names the user. The
socket ssh creates is the user's alone (mode 0600), and the client's trust
check sees the user's own ssh. Also checked: the stdio variant (`ssh host
pipefile get ...`), the two sshd_config switches that refuse the tunnel, and
a forwarding-only account (ForceCommand nologin in a Match block).

Every wait is bounded; at the end the ssh client, sshd's session processes,
the listener and anything left running as the throwaway user are stopped,
and the user is deleted, also when the test fails.
"""

import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import (CHILD_ENV, USER_A, UID_B, User, listening, need, need_root,
                      parse_log_line, wait_for)

SSHD = "/usr/sbin/sshd"      # absolute: sshd re-executes itself per connection
SSH = "/usr/bin/ssh"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
USERADD = "/usr/sbin/useradd"
USERDEL = "/usr/sbin/userdel"
# Marks the users this file creates, with the pid of the pytest that made
# them: one left by a killed run is removed by the next (when that pid is gone).
GECOS = "pipefiled test_remote_ssh pid "
# Debian's sshd refuses to start without its privilege-separation dir (the
# package's unit creates it at boot; a machine that never started sshd lacks it).
PRIVSEP_DIR = "/run/sshd"

EXIT_EACCES = 12      # pipefile --help: 10 + the status EACCES (2)
EXIT_UNAVAILABLE = 69
EXIT_PROTOCOL = 76    # connection closed before a complete response
EXIT_UNTRUSTED = 77


def need_ssh():
    need_root()
    for tool, pkg in ((SSHD, "openssh-server"), (SSH, "openssh-client"),
                      (SSH_KEYGEN, "openssh-client"), (USERADD, "passwd"),
                      (USERDEL, "passwd")):
        need(os.access(tool, os.X_OK),
             "needs %s (Debian package %s; scripts/deps.sh test installs it)" % (tool, pkg))


def run(argv, timeout=30, **kw):
    """Run a set-up command; fail with its output when it fails."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, env=CHILD_ENV, **kw)
    if p.returncode != 0:
        raise AssertionError("%r exited %d: %s" % (argv, p.returncode,
                                                   p.stderr.decode(errors="replace")))
    return p


# --------------------------------------------------------------- processes

def _proc_fields():
    """{pid: (ppid, real uid)} of every process, from /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = uid = None
        for line in st.splitlines():
            if line.startswith("PPid:"):
                ppid = int(line.split()[1])
            elif line.startswith("Uid:"):
                uid = int(line.split()[1])
        if ppid is not None and uid is not None:
            out[int(d)] = (ppid, uid)
    return out


def descendants(pid):
    """PIDs below pid in the process tree. sshd's per-connection processes
    call setsid(), so no process group or session holds them all."""
    procs = _proc_fields()
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, (ppid, _) in procs.items():
            if ppid == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def is_ancestor(ancestor, pid):
    procs = _proc_fields()
    seen = set()
    while pid in procs and pid not in seen:
        seen.add(pid)
        pid = procs[pid][0]
        if pid == ancestor:
            return True
    return False


def pids_of_uid(uid):
    return sorted(p for p, (_, u) in _proc_fields().items() if u == uid)


def kill_pids(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_popen(p, timeout=10):
    """SIGTERM, a bounded wait, SIGKILL. Returns True if it had to be killed."""
    if p.poll() is not None:
        return False
    p.terminate()
    try:
        p.wait(timeout=timeout)
        return False
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
        return True


# -------------------------------------------------------------------- user

def _remove_user(name, uid, grace=0):
    """Kill what still runs as uid after grace seconds (only this file's
    tests run as it), then userdel (which also removes the user's own
    group). Returns problems."""
    problems = []
    deadline = time.monotonic() + grace
    while pids_of_uid(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = pids_of_uid(uid)
    if left:
        problems.append("processes left running as %s (uid %d): %r" % (name, uid, left))
        kill_pids(left)
        wait_for(lambda: not pids_of_uid(uid), 10, "uid %d's processes to exit" % uid)
    deadline = time.monotonic() + 20
    while True:
        p = subprocess.run([USERDEL, name], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30, env=CHILD_ENV)
        try:
            pwd.getpwnam(name)
        except KeyError:
            return problems
        # another test's useradd/userdel holds /etc/passwd's lock: try again
        if time.monotonic() > deadline:
            problems.append("userdel %s exited %d: %s" % (name, p.returncode,
                                                           p.stderr.decode(errors="replace")))
            return problems
        time.sleep(0.2)


def _remove_stale_users():
    """Users a killed run of this file left behind (their pytest is gone)."""
    for pw in pwd.getpwall():
        if not pw.pw_gecos.startswith(GECOS):
            continue
        try:
            os.kill(int(pw.pw_gecos[len(GECOS):]), 0)
            continue  # that run is still going
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        _remove_user(pw.pw_name, pw.pw_uid)


def add_user(name, home):
    """A throwaway user with a real passwd entry, /bin/sh and home. The
    password field is "*" (no password, not locked: without PAM, sshd refuses
    a user whose field starts with "!", as useradd leaves it by default)."""
    argv = [USERADD, "-M", "-U", "-d", str(home), "-s", "/bin/sh", "-p", "*",
            "-c", GECOS + str(os.getpid()), name]
    deadline = time.monotonic() + 20
    while True:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30, env=CHILD_ENV)
        if p.returncode == 0:
            pw = pwd.getpwnam(name)
            return User(pw.pw_uid, pw.pw_gid, (), name)
        # exit 1 = cannot lock /etc/passwd (another useradd/userdel): retry
        if p.returncode != 1 or time.monotonic() > deadline:
            raise AssertionError("useradd %s exited %d: %s" % (
                name, p.returncode, p.stderr.decode(errors="replace")))
        time.sleep(0.2)


# -------------------------------------------------------------------- sshd

SSHD_CONFIG = """\
# test_remote_ssh.py's sshd: 127.0.0.1 only, one throwaway user, keys only.
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile {pid_file}
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthenticationMethods publickey
AuthorizedKeysFile {authorized_keys}
StrictModes yes
PermitRootLogin no
AllowUsers {user}
# A test's own lines come first: sshd keeps a keyword's first value.
{extra}
# What docs/remote.md asks of an admin: Unix-socket forwarding from the
# client's side. sshd also applies AllowTcpForwarding's local permission to
# Unix sockets (AllowTcpForwarding no refuses them too), so it stays "local".
AllowStreamLocalForwarding local
AllowTcpForwarding local
X11Forwarding no
AllowAgentForwarding no
PermitTTY no
PrintMotd no
LogLevel VERBOSE
{match}"""


class Remote:
    """The set-up the tests share: daemon, user, keys, sshd."""

    def __init__(self, workdir, daemon, runner):
        self.workdir, self.daemon, self.runner = workdir, daemon, runner
        self.sshd = self.ssh = None
        self.user = None
        self.port = None
        self.dir = workdir / "sshd"           # root's: host key, config, log
        self.home = workdir / "home"          # the user's
        self.client_dir = workdir / "client"  # the user's: the forwarded socket
        self.key = self.home / ".ssh" / "id_ed25519"
        self.known_hosts = self.home / ".ssh" / "known_hosts"
        self.sshd_log = self.dir / "sshd.log"
        self.ssh_log = self.client_dir / "ssh.log"
        self.local_sock = self.client_dir / "local.sock"
        self.extra_config = ""                # more sshd_config lines

    # --- set-up
    def setup(self):
        _remove_stale_users()
        self.dir.mkdir(mode=0o700)
        self.home.mkdir(mode=0o755)
        self.user = add_user("pfssh%d" % (os.getpid() % 10000000), self.home)
        u = self.user

        # StrictModes: the key file and every dir from it up to the home must
        # be owned by the user (or root) and writable by no one else. The
        # walk stops at the home, so /tmp's mode never matters.
        dot_ssh = self.home / ".ssh"
        dot_ssh.mkdir(mode=0o700)
        run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "pipefiled-test-host",
             "-f", str(self.dir / "host_key")])
        run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "pipefiled-test-client",
             "-f", str(self.key)])
        (dot_ssh / "authorized_keys").write_bytes((dot_ssh / "id_ed25519.pub").read_bytes())
        for p, mode in ((self.home, 0o755), (dot_ssh, 0o700), (self.key, 0o600),
                        (dot_ssh / "id_ed25519.pub", 0o644),
                        (dot_ssh / "authorized_keys", 0o600)):
            os.chown(p, u.uid, u.gid)
            os.chmod(p, mode)
        # 0755: others may reach the forwarded socket's name; only its own
        # mode (StreamLocalBindMask) keeps them out, which the test checks
        self.client_dir.mkdir(mode=0o755)
        os.chown(self.client_dir, u.uid, u.gid)
        os.chmod(self.client_dir, 0o755)

        if not os.path.isdir(PRIVSEP_DIR):
            os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
        self.start_sshd()

        # The client checks the host key against a known_hosts entry for it:
        # the ssh host key is what authenticates the remote end.
        host_pub = (self.dir / "host_key.pub").read_text().split()
        self.known_hosts.write_text("[127.0.0.1]:%d %s %s\n" % (self.port, host_pub[0],
                                                                host_pub[1]))
        os.chown(self.known_hosts, u.uid, u.gid)
        os.chmod(self.known_hosts, 0o644)

    def start_sshd(self):
        """sshd in the foreground (-D), logging to stderr (-e), on a free
        port; a port taken between choosing and binding it is retried."""
        for _ in range(5):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
            s.close()
            cfg = self.dir / "sshd_config"
            cfg.write_text(SSHD_CONFIG.format(
                port=self.port, host_key=self.dir / "host_key",
                pid_file=self.dir / "sshd.pid", user=self.user.name,
                authorized_keys=self.home / ".ssh" / "authorized_keys",
                extra="" if self.extra_config.startswith("Match") else self.extra_config,
                # a Match block runs to the end of the file: it goes last
                match=self.extra_config if self.extra_config.startswith("Match") else ""))
            run([SSHD, "-t", "-f", str(cfg)])
            offset = self.sshd_log.stat().st_size if self.sshd_log.exists() else 0
            with open(self.sshd_log, "ab") as err:
                self.sshd = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=err, env=CHILD_ENV,
                    start_new_session=True)
            ready = "Server listening on 127.0.0.1 port %d." % self.port

            def up():
                # bytes: sshd -e ends its lines with "\r\n", which text
                # mode would shorten, shifting the offset
                log = self.sshd_log.read_bytes()[offset:].decode(errors="replace")
                return ready in log or self.sshd.poll() is not None

            wait_for(up, 15, "sshd to listen")
            if self.sshd.poll() is None:
                return
            if b"Address already in use" not in self.sshd_log.read_bytes()[offset:]:
                break
        raise AssertionError("sshd did not start:\n%s" % self.sshd_log.read_text(errors="replace"))

    def ssh_argv(self, *args):
        """The user's ssh to our sshd: its key only, the host key checked
        against known_hosts, nothing read from any ssh_config."""
        return self.user.setpriv() + [
            SSH, "-F", "/dev/null", "-p", str(self.port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(self.key),
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=%s" % self.known_hosts,
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10"] + list(args)

    def env(self):
        e = dict(CHILD_ENV)
        e.update(HOME=str(self.home), USER=self.user.name, LOGNAME=self.user.name)
        return e

    def tunnel(self):
        """ssh -N -L local.sock:daemon.sock, up once local.sock listens."""
        argv = self.ssh_argv("-N", "-o", "ExitOnForwardFailure=yes",
                             "-L", "%s:%s" % (self.local_sock, self.daemon.sock),
                             "%s@127.0.0.1" % self.user.name)
        with open(self.ssh_log, "ab") as err:
            self.ssh = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err,
                                        env=self.env(), cwd=str(self.client_dir))

        def up():
            if self.ssh.poll() is not None:
                raise AssertionError("ssh exited %d:\n%s\n--- sshd ---\n%s" % (
                    self.ssh.returncode, self.ssh_log.read_text(errors="replace"),
                    self.sshd_log.read_text(errors="replace")))
            return self.local_sock.exists() and listening(self.local_sock)

        wait_for(up, 20, "ssh to listen on %s" % self.local_sock)

    # --- tear-down
    def teardown(self):
        problems = []
        if self.ssh is not None:
            # After a refused channel, ssh may linger on SIGTERM; the client
            # being killed says nothing about the daemon or sshd.
            stop_popen(self.ssh, timeout=5)
        if self.sshd is not None:
            # The session processes end when the client's connection does.
            deadline = time.monotonic() + 10
            while self.sshd.poll() is None and descendants(self.sshd.pid) and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            left = descendants(self.sshd.pid) if self.sshd.poll() is None else set()
            if left:
                problems.append("sshd's session processes outlived the client: %r" % sorted(left))
                kill_pids(left)
            if stop_popen(self.sshd):
                problems.append("sshd did not exit on SIGTERM; killed")
        if self.user is not None:
            # sshd's unprivileged session process may outlive its monitor
            # for a moment (it is then no longer below the listener)
            problems += _remove_user(self.user.name, self.user.uid, grace=10)
        return problems


@pytest.fixture
def remote(make_daemon, runner, workdir, request):
    need_ssh()
    d = make_daemon()
    r = Remote(workdir, d, runner)
    r.extra_config = getattr(request, "param", "")  # indirect parametrization
    try:
        r.setup()
        u = r.user
        d.put("own.txt", b"the user's own file\n" + os.urandom(4096), mode=0o600,
              uid=u.uid, gid=u.gid)
        d.put("other.txt", b"not the user's\n", mode=0o600, uid=UID_B, gid=UID_B)
        d.start()
        yield r
    finally:
        problems = r.teardown()
        failed = any(getattr(request.node, "rep_" + w, None) is not None and
                     getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
        if failed or problems:
            for name, p in (("sshd", r.sshd_log), ("ssh", r.ssh_log)):
                if p.exists():
                    print("\n--- %s log (tail) ---\n%s" % (name, p.read_text(errors="replace")[-3000:]))
    assert not problems, "\n".join(problems)


def log_entry(daemon, path, n=1):
    """The n-th access-log entry for path, waited for (bounded)."""
    def find():
        got = [e for e in (parse_log_line(l, "text") for l in daemon.log_lines())
               if e["path"] == path]
        return got[n - 1] if len(got) >= n else None
    return wait_for(find, 10, "the access-log line for %r" % path)


# ------------------------------------------------------------------- tests

@pytest.mark.pf_timeout(60)
def test_tunnel_serves_as_the_ssh_user(remote, runner):
    r, d, u = remote, remote.daemon, remote.user
    r.tunnel()

    # ssh made the socket with StreamLocalBindMask's default 0177: only the
    # user may use the tunnel, though its dir lets anyone reach the name.
    st = os.lstat(r.local_sock)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == u.uid, st
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)

    own = (d.root / "own.txt").read_bytes()
    p = runner.cli(u, "-s", r.local_sock, "get", "/own.txt", timeout=30)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr
    assert p.stdout == own

    p = runner.cli(u, "-s", r.local_sock, "get", "/other.txt", timeout=30)
    assert p.returncode == EXIT_EACCES, p.stderr
    assert b"EACCES" in p.stderr and p.stdout == b"", p.stderr

    # The daemon's peer was sshd's session process for this user: the log
    # names the user's uid and gid, and a pid under our sshd, not the client.
    ok = log_entry(d, b"/own.txt")
    denied = log_entry(d, b"/other.txt")
    for e, status, nbytes in ((ok, "OK", len(own)), (denied, "EACCES", 0)):
        assert (e["uid"], e["gid"], e["user"]) == (u.uid, u.gid, u.name), e
        assert (e["op"], e["status"], e["bytes"]) == ("GET", status, nbytes), e
        assert is_ancestor(r.sshd.pid, e["pid"]), \
            "peer pid %d is not one of sshd's (listener %d)" % (e["pid"], r.sshd.pid)
        assert e["pid"] != r.ssh.pid
        assert b"User child is on pid %d\r\n" % e["pid"] in r.sshd_log.read_bytes(), \
            "peer pid %d is not the session's (sshd's log names it)" % e["pid"]

    # Another local user cannot ride the tunnel: the socket's mode refuses
    # the connection, and nothing reaches the daemon.
    before = len(d.log_lines())
    p = runner.cli(USER_A, "-s", r.local_sock, "get", "/own.txt", timeout=30)
    assert p.returncode == EXIT_UNAVAILABLE and p.stdout == b"", p.stderr
    # What the client can check is the tunnel's end: the user's own ssh (the
    # default rule's "yourself"), not the daemon; demanding root is refused
    # before anything is sent.
    p = runner.cli(u, "--server-uid", "0", "-s", r.local_sock, "get", "/own.txt", timeout=30)
    assert p.returncode == EXIT_UNTRUSTED and p.stdout == b"", p.stderr
    time.sleep(0.2)
    assert len(d.log_lines()) == before, d.log_lines()[before:]


@pytest.mark.pf_timeout(60)
def test_stdio_variant_runs_pipefile_remotely(remote, tools):
    """`ssh host pipefile get PATH`: pipefile runs on the server as the user
    and its stdout comes back through ssh (needs a session, not forwarding)."""
    r, d, u = remote, remote.daemon, remote.user
    cmd = "%s -s %s get %%s" % (tools / "pipefile", d.sock)
    base = r.ssh_argv("-T", "%s@127.0.0.1" % u.name)

    def remote_get(path):
        return subprocess.run(base + [cmd % path], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=30, env=r.env(),
                              cwd=str(r.client_dir))

    p = remote_get("/own.txt")
    assert (p.returncode, p.stdout) == (0, (d.root / "own.txt").read_bytes()), p.stderr
    p = remote_get("/other.txt")
    assert p.returncode == EXIT_EACCES and p.stdout == b"", p.stderr  # ssh passes it on
    for path, status in ((b"/own.txt", "OK"), (b"/other.txt", "EACCES")):
        e = log_entry(d, path)
        assert (e["uid"], e["gid"], e["status"]) == (u.uid, u.gid, status), e


@pytest.mark.pf_timeout(60)
@pytest.mark.parametrize("remote", ["AllowStreamLocalForwarding no",
                                    "AllowTcpForwarding no"], indirect=True)
def test_admin_can_refuse_socket_forwarding(remote, runner):
    """The sshd_config switches docs/remote.md names: with either one off,
    the tunnel's channel is refused and nothing reaches the daemon."""
    r, d, u = remote, remote.daemon, remote.user
    r.tunnel()  # ssh still listens locally: the refusal comes per connection
    p = runner.cli(u, "-s", r.local_sock, "get", "/own.txt", timeout=30)
    assert p.returncode == EXIT_PROTOCOL and p.stdout == b"", p.stderr
    # the two switches are checked in different places, which log differently
    wait_for(lambda: re.search(rb"refused streamlocal port forward|but the request was denied",
                               r.sshd_log.read_bytes()), 10, "sshd to log the refusal")
    assert d.log_lines() == []


@pytest.mark.pf_timeout(60)
@pytest.mark.parametrize("remote", ["Match User *\n  PermitTTY no\n"
                                    "  ForceCommand /usr/sbin/nologin\n"], indirect=True)
def test_forwarding_only_account(remote, runner):
    """docs/remote.md's Match block: ForceCommand stops commands, not
    forwarding, so such a user fetches through the tunnel and runs nothing."""
    r, d, u = remote, remote.daemon, remote.user
    r.tunnel()
    p = runner.cli(u, "-s", r.local_sock, "get", "/own.txt", timeout=30)
    assert (p.returncode, p.stdout) == (0, (d.root / "own.txt").read_bytes()), p.stderr
    p = subprocess.run(r.ssh_argv("-T", "%s@127.0.0.1" % u.name, "id"), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30, env=r.env(), cwd=str(r.client_dir))
    assert p.returncode != 0 and b"uid=" not in p.stdout, (p.returncode, p.stdout, p.stderr)
    assert b"not available" in p.stdout + p.stderr, (p.stdout, p.stderr)  # nologin's words
    assert [parse_log_line(l, "text")["uid"] for l in d.log_lines()] == [u.uid]

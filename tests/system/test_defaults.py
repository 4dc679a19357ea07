"""pipefiled with no -c runs on its built-in defaults: socket
/run/pipefiled/pipefiled.sock, root /srv/pipefiled. A missing default root
is created at start-up (mode 0755, empty), and so is the socket's directory;
`--check-config` with no file prints the defaults, exits 0 and only warns
that the root does not exist yet, creating nothing. A default root that
exists but cannot be opened is an error naming it as the default.

The host's /run and /srv must not be touched, so every run here happens in a
private mount namespace (unshare --mount --propagation private) with fresh
tmpfs mounts on /run and /srv. The wrapper execs down to the daemon, so the
pid the fixture signals is pipefiled's, and the namespace with its mounts
ends when the daemon exits. Files in the namespace are reached through
/proc/PID/root (as root) and clients of other uids run inside it with
`nsenter --mount --target PID`. Root only."""

import configparser
import hashlib
import json
import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import (CHILD_ENV, PY, USER_A, USER_C, Daemon, listening, need, need_root, same_file,
                      parse_log_line, wait_for)

DEF_SOCK = "/run/pipefiled/pipefiled.sock"
DEF_ROOT = "/srv/pipefiled"
HOST_PATHS = ("/srv/pipefiled", "/run/pipefiled")

WRAPPER = """#!/bin/sh
# Fresh tmpfs on /run and /srv in a private mount namespace, then exec the
# rest of the command line (the daemon keeps this pid). PF_SRV_SETUP, when
# set, runs in the namespace before that (to lay out /srv).
set -eu
if [ "${1-}" != --in-namespace ]; then
  exec unshare --mount --propagation private -- "$0" --in-namespace "$@"
fi
shift
mount -n -t tmpfs -o mode=0755,size=16m pf-test-run /run
mount -n -t tmpfs -o mode=0755,size=16m pf-test-srv /srv
if [ -n "${PF_SRV_SETUP-}" ]; then
  sh -c "$PF_SRV_SETUP"
fi
exec "$@"
"""


def host_mounts():
    with open("/proc/self/mountinfo") as f:
        return sorted(l.split(" ", 4)[4] for l in f)


def host_state():
    """What the host has at the default paths: (path, exists, lstat mode/ino)."""
    out = []
    for p in HOST_PATHS:
        try:
            st = os.lstat(p)
            out.append((p, True, st.st_mode, st.st_ino))
        except FileNotFoundError:
            out.append((p, False, None, None))
    return out


class NoConfigDaemon(Daemon):
    """A Daemon started with no -c, through the namespace wrapper."""

    def __init__(self, dir, daemon_binary, wrapper):
        super().__init__(dir)
        self.daemon_binary = daemon_binary
        self.wrapper = wrapper
        self.env = None

    def ns(self, path):
        """A path inside the daemon's namespace, as seen from here (root)."""
        return Path("/proc/%d/root%s" % (self.proc.pid, path))

    def start(self, wait=True, user=None, args=(), timeout=10, env=None, umask=None):
        argv = [str(self.wrapper), str(self.daemon_binary)] + list(args)
        self.argv = argv
        self.err_offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        e = dict(CHILD_ENV)
        if env:
            e.update(env)
        old = os.umask(umask) if umask is not None else None
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL,
                stdout=open(self.stdout_path, "ab"), stderr=open(self.stderr_path, "ab"),
                cwd=str(self.dir), start_new_session=True, env=e)
        finally:
            if old is not None:
                os.umask(old)
        self.stopped_rc = None
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10):
        def ready():
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("pipefiled exited %d before ready:\n%s" % (rc, self.stderr()))
            if b"ready:" not in self.stderr_path.read_bytes()[self.err_offset:]:
                return False
            try:
                if not stat.S_ISSOCK(os.lstat(self.ns(DEF_SOCK)).st_mode):
                    return False
            except FileNotFoundError:
                return False
            return listening(DEF_SOCK)
        wait_for(ready, timeout, "pipefiled (no -c) to be ready")
        # exec'd all the way down: this pid is pipefiled, in its own namespace
        assert same_file("/proc/%d/exe" % self.proc.pid, self.daemon_binary)
        assert os.readlink("/proc/%d/ns/mnt" % self.proc.pid) != os.readlink("/proc/self/ns/mnt")
        self.sock = self.ns(DEF_SOCK)  # for conn() as root, from here

    def access_lines(self):
        """Access-log lines (the default access_log is stderr)."""
        return [l.encode() for l in self.stderr().splitlines() if l.startswith("time=")]


@pytest.fixture
def nsenv(workdir, tools, request):
    """(wrapper path, make() -> NoConfigDaemon); checks afterwards that the
    host's mounts and default paths are as they were."""
    need_root()
    for tool in ("unshare", "nsenter", "mount"):
        need(shutil.which(tool) is not None, "needs %s (util-linux)" % tool)
    before_mounts = host_mounts()
    before_state = host_state()
    wrapper = workdir / "in-namespace"
    wrapper.write_text(WRAPPER)
    os.chmod(wrapper, 0o755)
    made = []

    def make():
        d = NoConfigDaemon(workdir / ("d%d" % len(made)), tools / "pipefiled", wrapper)
        made.append(d)
        return d

    yield wrapper, make
    problems = []
    for d in made:
        problems += ["%s: %s" % (d.dir, p) for p in d.teardown()]
    if host_mounts() != before_mounts:
        problems.append("host mounts changed: %r" %
                        sorted(set(host_mounts()) ^ set(before_mounts)))
    if host_state() != before_state:
        problems.append("host default paths changed: %r -> %r" % (before_state, host_state()))
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    if failed or problems:
        for d in made:
            print("\n--- %s stderr (tail) ---\n%s" % (d.dir, d.stderr()[-3000:]))
    assert not problems, "\n".join(problems)


def in_ns(pid, user, argv, timeout=30):
    """Run argv inside pid's mount namespace, as user (None: root)."""
    # --root/--wd: take the daemon's root and cwd too; entering a mount
    # namespace alone would put the client at that namespace's real root,
    # which is not ours when the suite runs in a chroot.
    pre = ["nsenter", "--target", str(pid), "--mount", "--root", "--wd", "--"]
    if user is not None:
        pre += user.setpriv()
    return subprocess.run(pre + [str(a) for a in argv], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, env=CHILD_ENV)


def ns_pfp(d, tools, user, *args):
    p = in_ns(d.proc.pid, user, [PY, "-I", tools / "pfp.py", DEF_SOCK] + list(args))
    assert p.returncode == 0, (p.returncode, p.stderr)
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


@pytest.mark.pf_timeout(60)
def test_no_config_creates_default_root_and_socket_and_serves(nsenv, tools):
    _, make = nsenv
    d = make()
    d.start(umask=0o022)
    pid = d.proc.pid
    err = d.stderr()
    assert "pipefiled: info: created the default root %s (empty)" % DEF_ROOT in err, err
    ready = [l for l in err.splitlines() if "ready:" in l]
    assert len(ready) == 1, err
    # workers = auto: one per CPU the daemon may run on, at least 2
    workers = max(2, min(256, len(os.sched_getaffinity(0))))
    assert ready[0].startswith("pipefiled: info: ready: serving %s on %s with %d workers "
                               "(switching identity per request" % (DEF_ROOT, DEF_SOCK, workers)), \
        ready

    # the root: created, a directory, 0755, root-owned, empty
    st = os.lstat(d.ns(DEF_ROOT))
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o755, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert os.listdir(d.ns(DEF_ROOT)) == []
    # the socket and its directory
    sdir = os.lstat(d.ns("/run/pipefiled"))
    assert stat.S_ISDIR(sdir.st_mode) and stat.S_IMODE(sdir.st_mode) == 0o755, oct(sdir.st_mode)
    sst = os.lstat(d.ns(DEF_SOCK))
    assert stat.S_ISSOCK(sst.st_mode)
    assert stat.S_IMODE(sst.st_mode) == 0o666, oct(sst.st_mode)
    assert os.listdir(d.ns("/run/pipefiled")) == ["pipefiled.sock"]
    # none of it on the host
    assert not any(os.path.samestat(st, os.lstat(p)) for p in HOST_PATHS if os.path.lexists(p))

    # a file put into the namespace's root is served, to a client in the namespace
    data = os.urandom(10000) + b"end\n"
    f = d.ns(DEF_ROOT + "/hello.bin")
    f.write_bytes(data)
    os.chmod(f, 0o644)
    os.chown(f, 0, 0)
    sec = d.ns(DEF_ROOT + "/secret")
    sec.write_bytes(b"root only\n")
    os.chmod(sec, 0o600)

    res = ns_pfp(d, tools, USER_A, "get", "hello.bin", "/hello.bin", "secret", "nope")
    assert [r["name"] for r in res] == ["OK", "OK", "EACCES", "ENOENT"], res
    assert res[0]["received"] == len(data) and res[0]["sha256"] == pfp_sha(data), res[0]
    assert all(r["problems"] == [] for r in res), res
    stat_res = ns_pfp(d, tools, USER_C, "stat", "hello.bin")
    assert stat_res[0]["name"] == "OK" and stat_res[0]["size"] == len(data), stat_res

    # the CLI in the namespace finds the socket by its own default (no -s,
    # no $PIPEFILE_SOCKET)
    p = in_ns(pid, USER_A, [tools / "pipefile", "get", "hello.bin"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == data
    # default policy: serve_root_clients = no
    assert d.get("hello.bin").name == "EPERM"
    requests = 4 + 1 + 1 + 1

    assert d.running()
    assert d.stop() == 0
    err = d.stderr()
    assert err.splitlines()[-1] == "pipefiled: info: stopped", err
    lines = d.access_lines()
    assert len(lines) == requests, lines
    recs = [parse_log_line(l, "text") for l in lines]
    assert sorted(r["status"] for r in recs) == sorted(
        ["OK", "OK", "EACCES", "ENOENT", "OK", "OK", "EPERM"]), recs


@pytest.mark.pf_timeout(60)
def test_default_root_mode_does_not_depend_on_umask(nsenv, tools):
    """Started under umask 077 (as a cautious admin or unit might), the
    created default root is still 0755 as documented, so clients can enter
    it; the socket's directory already is."""
    _, make = nsenv
    d = make()
    d.start(umask=0o077)
    assert stat.S_IMODE(os.lstat(d.ns("/run/pipefiled")).st_mode) == 0o755
    f = d.ns(DEF_ROOT + "/f")
    f.write_bytes(b"x")
    os.chmod(f, 0o644)
    mode = stat.S_IMODE(os.lstat(d.ns(DEF_ROOT)).st_mode)
    res = ns_pfp(d, tools, USER_A, "get", "f")
    assert d.stop() == 0
    assert mode == 0o755, oct(mode)
    assert res[0]["name"] == "OK", res


def pfp_sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.mark.pf_timeout(60)
def test_no_config_existing_default_root_is_used_not_recreated(nsenv, tools):
    """A default root that exists (with content, mode 0750 and another
    owner) is served as it is: no 'created' line, mode and content kept."""
    _, make = nsenv
    d = make()
    setup = ("mkdir -m 0750 /srv/pipefiled && chgrp %d /srv/pipefiled && "
             "printf 'kept\\n' > /srv/pipefiled/f && chmod 0644 /srv/pipefiled/f" % USER_A.gid)
    d.start(env={"PF_SRV_SETUP": setup})
    assert "created the default root" not in d.stderr()
    st = os.lstat(d.ns(DEF_ROOT))
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_gid == USER_A.gid
    assert sorted(os.listdir(d.ns(DEF_ROOT))) == ["f"]
    res = ns_pfp(d, tools, USER_A, "get", "f")
    assert res[0]["name"] == "OK" and res[0]["received"] == 5, res
    # a uid outside the group cannot enter the 0750 root: EACCES, not a leak
    res = ns_pfp(d, tools, USER_C, "get", "f")
    assert res[0]["name"] == "EACCES", res
    assert d.stop() == 0


def run_in_fresh_ns(wrapper, workdir, argv, setup=None, after="ls -A /srv /run"):
    """Run argv (the daemon's) in a fresh namespace; then, in the same
    namespace, `after`. Returns (rc, stdout, stderr, after's output)."""
    script = workdir / "ns-script.sh"
    out, err, listing = workdir / "ns.out", workdir / "ns.err", workdir / "ns.listing"
    script.write_text(
        "#!/bin/sh\n"
        "%s >%s 2>%s\n"
        "rc=$?\n"
        "{ %s; } >%s 2>&1\n"
        "exit $rc\n" % (" ".join(shlex.quote(str(a)) for a in argv), shlex.quote(str(out)),
                        shlex.quote(str(err)), after, shlex.quote(str(listing))))
    os.chmod(script, 0o755)
    env = dict(CHILD_ENV)
    if setup:
        env["PF_SRV_SETUP"] = setup
    p = subprocess.run([str(wrapper), "/bin/sh", str(script)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30, env=env, cwd=str(workdir))
    assert p.stderr == b"", p.stderr  # the wrapper itself said nothing
    return p.returncode, out.read_text(), err.read_text(), listing.read_text()


def parse_printed(text):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    cp.read_string(text)
    return cp


def test_check_config_no_file_prints_defaults_and_creates_nothing(nsenv, tools, workdir):
    wrapper, _ = nsenv
    rc, out, err, listing = run_in_fresh_ns(wrapper, workdir,
                                            [tools / "pipefiled", "--check-config"])
    assert rc == 0, (rc, err)
    cp = parse_printed(out)
    assert cp["server"]["socket"] == DEF_SOCK, out
    assert cp["server"]["root"] == DEF_ROOT, out
    assert int(cp["server"]["socket_mode"], 8) == 0o666
    assert cp["server"]["workers"] == "auto"
    assert cp["log"]["access_log"] == "stderr"
    assert cp["identity"]["serve_root_clients"] in ("no", "false", "off", "0")
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pipefiled: warning: "), err
    assert DEF_ROOT in lines[0] and "does not exist" in lines[0], err
    # nothing created: /srv and /run (fresh tmpfs) are still empty
    assert listing.split() == ["/run:", "/srv:"], listing
    # fed back as a -c file, root = /srv/pipefiled is a *configured* root:
    # missing, it is an error at its line (a configured root is never
    # created), and still nothing is created
    printed = workdir / "printed.ini"
    printed.write_text(out)
    line = [i for i, l in enumerate(out.splitlines(), 1) if l.startswith("root =")][0]
    rc2, out2, err2, listing2 = run_in_fresh_ns(
        wrapper, workdir, [tools / "pipefiled", "-c", printed, "--check-config"])
    assert rc2 == 78, (rc2, err2)
    assert err2 == ("pipefiled: error: %s:%d: [server] root: %s: No such file or directory\n"
                    % (printed, line, DEF_ROOT)), err2
    assert listing2.split() == ["/run:", "/srv:"], listing2


def test_check_config_no_file_default_root_present_no_warning(nsenv, tools, workdir):
    wrapper, _ = nsenv
    rc, out, err, listing = run_in_fresh_ns(wrapper, workdir,
                                            [tools / "pipefiled", "--check-config"],
                                            setup="mkdir -m 0755 /srv/pipefiled")
    assert rc == 0, err
    assert err == "", err
    assert parse_printed(out)["server"]["root"] == DEF_ROOT


@pytest.mark.parametrize("mode", ["check", "start"])
def test_default_root_not_a_directory(nsenv, tools, workdir, mode):
    """/srv/pipefiled exists as a file: nothing is created or replaced; the
    error says the root is the default, exit 78."""
    wrapper, _ = nsenv
    argv = [tools / "pipefiled"] + (["--check-config"] if mode == "check" else [])
    rc, out, err, listing = run_in_fresh_ns(
        wrapper, workdir, argv, setup="echo file > /srv/pipefiled",
        after="ls -A /srv /run; cat /srv/pipefiled")
    assert rc == 78, (rc, err)
    assert err == ("pipefiled: error: built-in config: [server] root (the default): "
                   "%s: Not a directory\n" % DEF_ROOT), err
    assert out == ""
    assert listing.split() == ["/run:", "/srv:", "pipefiled", "file"], listing


@pytest.mark.parametrize("mode", ["check", "start"])
def test_config_file_without_root_names_the_default(nsenv, tools, workdir, mode):
    """-c FILE that does not set root: the default applies. Missing: created
    at start, only warned about by --check-config. A file there: the error
    reads `FILE: [server] root (the default): ...` (no line: it is not in
    the file)."""
    wrapper, _ = nsenv
    ini = workdir / "noroot.ini"
    ini.write_text("[server]\nsocket = %s/x.sock\nworkers = 1\n" % workdir)
    argv = [tools / "pipefiled", "-c", ini] + (["--check-config"] if mode == "check" else [])
    rc, out, err, listing = run_in_fresh_ns(
        wrapper, workdir, argv, setup="echo file > /srv/pipefiled")
    assert rc == 78, (rc, err)
    assert err == ("pipefiled: error: %s: [server] root (the default): %s: Not a directory\n"
                   % (ini, DEF_ROOT)), err
    assert not (workdir / "x.sock").exists()

    if mode == "check":
        rc, out, err, listing = run_in_fresh_ns(wrapper, workdir, argv)
        assert rc == 0, err
        assert len(err.splitlines()) == 1 and "does not exist" in err, err
        assert listing.split() == ["/run:", "/srv:"], listing


@pytest.mark.parametrize("mode", ["check", "start"])
def test_configured_default_path_is_never_created(nsenv, tools, workdir, mode):
    """root = /srv/pipefiled written in the file is a configured root: when
    missing it is an error at its line (not created), like any other path."""
    wrapper, _ = nsenv
    ini = workdir / "root.ini"
    ini.write_text("[server]\nsocket = %s/x.sock\nroot = %s\n" % (workdir, DEF_ROOT))
    argv = [tools / "pipefiled", "-c", ini] + (["--check-config"] if mode == "check" else [])
    rc, out, err, listing = run_in_fresh_ns(wrapper, workdir, argv)
    assert rc == 78, (rc, err)
    assert err == ("pipefiled: error: %s:3: [server] root: %s: No such file or directory\n"
                   % (ini, DEF_ROOT)), err
    assert listing.split() == ["/run:", "/srv:"], listing
    assert not (workdir / "x.sock").exists()

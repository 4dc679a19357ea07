"""The systemd units and their install, checked without a booted systemd:

- `systemd-analyze verify` accepts both installed units, silently, in a root
  holding what `make install` put there, their Documentation= man pages
  looked up among the installed pages only (and refuses when the binary or
  a page is missing: the root really is what it looks at);
- `systemd-analyze security --offline=true` rates pipefiled.service at 1.0
  or lower (the score is printed);
- the service keeps the issue's promises: its own user with exactly
  CAP_SETUID+CAP_SETGID, and a system call filter that still lets the
  identity switch and the file transfer run (computed from systemd's own
  groups) while refusing setuid, chown and the like; the socket is the
  config's documented default path and mode;
- `make install DESTDIR= PREFIX= SYSTEMDUNITDIR=` puts every file where
  expected, with its mode, the service pointing at the installed daemon;
- systemd-sysusers and systemd-tmpfiles, run on that tree, make the
  pipefiled system user and its log directory (0750, its own);
- logrotate parses pipefiled.logrotate and, run on a private /var/log,
  rotates as pipefiled and signals the daemon with USR1.

A test that needs a tool (or root) is skipped outside CI and fails in CI."""

import configparser
import os
import pwd
import re
import shutil
import stat
import subprocess

import pytest

from conftest import BUILD, REPO, need

MAKE_TIMEOUT = 240  # nothing to build when the suite's build is current
TOOL_TIMEOUT = 60
SYSTEMD = REPO / "systemd"
SERVICE = SYSTEMD / "pipefiled.service"
SOCKET = SYSTEMD / "pipefiled.socket"
MAX_EXPOSURE = 1.0
SBIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def tool(name, package):
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":" + SBIN_PATH)
    need(path is not None, "needs %s (Debian package %s)" % (name, package))
    return path


def run(argv, timeout=TOOL_TIMEOUT, env=None):
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, env=env)


def text(p):
    return (p.stdout + p.stderr).decode(errors="replace")


def make_install(destdir, *args):
    need(shutil.which("make") is not None, "needs make")
    p = subprocess.run(
        ["make", "-C", str(REPO), "--no-print-directory", "install",
         "DESTDIR=%s" % destdir, "BUILD=%s" % BUILD] + list(args),
        stdin=subprocess.DEVNULL, capture_output=True, timeout=MAKE_TIMEOUT,
        preexec_fn=lambda: os.umask(0o022))
    assert p.returncode == 0, "make install failed (%d):\n%s" % (p.returncode, text(p))
    return text(p)


def unit_entries(path):
    """[(section, key, value)] in file order: a unit may repeat a key
    (SystemCallFilter=), which configparser cannot hold."""
    out, section = [], None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(.+)\]", line)
        if m:
            section = m.group(1)
            continue
        k, sep, v = line.partition("=")
        assert sep, "%s: not key=value: %r" % (path, line)
        out.append((section, k.strip(), v.strip()))
    return out


def values(entries, section, key):
    return [v for s, k, v in entries if s == section and k == key]


def one(entries, section, key):
    v = values(entries, section, key)
    assert len(v) == 1, "[%s] %s= given %d times: %r" % (section, key, len(v), v)
    return v[0]


def config_default(section, key):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    cp.read(REPO / "config/pipefiled.ini")
    return cp[section][key]


# ------------------------------------------------------------ verify, score

def verify_root(workdir):
    """DESTDIR of `make install PREFIX=/usr`, plus what verify resolves the
    units against: the host's unit directory (sysinit.target and the other
    units ours depend on), /bin/kill (ExecReload) and merged-/usr links."""
    # /lib on a Debian whose /usr is not merged
    hostunits = [d for d in ("/usr/lib/systemd/system", "/lib/systemd/system")
                 if os.path.exists(d + "/sysinit.target")]
    need(hostunits, "needs the host's systemd units (Debian package systemd)")
    kill = [k for k in ("/bin/kill", "/usr/bin/kill") if os.path.exists(k)]
    need(kill, "needs /bin/kill (Debian package procps)")
    root = workdir / "root"
    root.mkdir()
    make_install(root, "PREFIX=/usr")
    units = root / "usr/lib/systemd/system"
    for f in os.listdir(hostunits[0]):
        if not (units / f).exists():
            src = os.path.join(hostunits[0], f)
            if os.path.isdir(src) and not os.path.islink(src):
                shutil.copytree(src, units / f, symlinks=True)
            else:
                shutil.copy2(src, units / f, follow_symlinks=False)
    shutil.copy2(kill[0], root / "usr/bin/kill")
    for d in ("bin", "sbin", "lib"):
        os.symlink("usr/" + d, root / d)
    return root


@pytest.mark.pf_timeout(MAKE_TIMEOUT + 120)
def test_units_verify(workdir):
    analyze = tool("systemd-analyze", "systemd")
    tool("man", "man-db")
    root = verify_root(workdir)
    unitdir = "/usr/lib/systemd/system/"
    # verify runs the host's man(1) (not --root aware) on each Documentation=
    # page; MANPATH makes it search only the pages this install put there, so
    # the units' man: references are checked against what we ship.
    env = dict(os.environ, MANPATH=str(root / "usr/share/man"))
    for unit in ("pipefiled.socket", "pipefiled.service"):
        p = run([analyze, "verify", "--root=%s" % root, unitdir + unit], env=env)
        assert p.returncode == 0 and text(p).strip() == "", "%s:\n%s" % (unit, text(p))
    # without the installed daemon, or without its page, the same check
    # fails: the root is what verify looks at
    os.rename(root / "usr/share/man/man5/pipefiled.ini.5", root / "pipefiled.ini.5")
    p = run([analyze, "verify", "--root=%s" % root, unitdir + "pipefiled.service"], env=env)
    assert p.returncode != 0 and "pipefiled.ini(5)" in text(p), text(p)
    os.rename(root / "pipefiled.ini.5", root / "usr/share/man/man5/pipefiled.ini.5")
    os.unlink(root / "usr/sbin/pipefiled")
    p = run([analyze, "verify", "--root=%s" % root, unitdir + "pipefiled.service"], env=env)
    assert p.returncode != 0 and "/usr/sbin/pipefiled" in text(p), text(p)


def test_security_score():
    analyze = tool("systemd-analyze", "systemd")
    p = run([analyze, "security", "--offline=true", "--no-pager", SERVICE])
    out = text(p)
    m = re.search(r"Overall exposure level for pipefiled\.service: (\d+\.\d+)", out)
    assert p.returncode == 0 and m, out
    score = float(m.group(1))
    print("\nsystemd-analyze security --offline=true systemd/pipefiled.service: %.1f" % score)
    assert score <= MAX_EXPOSURE, "exposure %.1f > %.1f:\n%s" % (
        score, MAX_EXPOSURE, "\n".join(l for l in out.splitlines() if "\u2717" in l))


# ---------------------------------------------------------- the promises

def syscall_group(analyze, item):
    """Names of the system calls in @group (recursively), or {item}."""
    if not item.startswith("@"):
        return {item}
    p = run([analyze, "syscall-filter", "--no-pager", item])
    assert p.returncode == 0, text(p)
    names = set()
    for line in p.stdout.decode().splitlines():
        w = line.strip()
        if not w or w.startswith("#") or w == item or " " in w:
            continue
        names |= syscall_group(analyze, w) if w.startswith("@") else {w}
    return names


def effective_filter(analyze, assignments):
    """The allowed system calls after SystemCallFilter= lines, merged the
    way systemd.exec(5) says: the first one (an allow list here) sets the
    default, each later one adds (plain) or removes (~) its calls."""
    assert assignments and not assignments[0].startswith("~"), assignments
    allowed = set()
    for a in assignments:
        deny = a.startswith("~")
        calls = set()
        for item in a.lstrip("~").split():
            calls |= syscall_group(analyze, item)
        allowed = allowed - calls if deny else allowed | calls
    return allowed


def test_service_promises():
    analyze = tool("systemd-analyze", "systemd")
    e = unit_entries(SERVICE)
    assert one(e, "Service", "Type") == "notify"
    assert one(e, "Service", "User") == "pipefiled"
    for key in ("AmbientCapabilities", "CapabilityBoundingSet"):
        assert set(one(e, "Service", key).split()) == {"CAP_SETUID", "CAP_SETGID"}, key
    assert one(e, "Service", "NoNewPrivileges") == "yes"
    assert one(e, "Service", "ProtectSystem") == "strict"
    assert one(e, "Service", "PrivateNetwork") == "yes"
    assert one(e, "Service", "RestrictAddressFamilies") == "AF_UNIX"
    assert one(e, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert re.fullmatch(r"/usr/sbin/pipefiled -c /etc/pipefiled/pipefiled\.ini",
                        one(e, "Service", "ExecStart"))
    # would keep the daemon from becoming its clients / reaching /home roots
    assert values(e, "Service", "PrivateUsers") in ([], ["no"])
    assert one(e, "Service", "ProtectHome") in ("no", "read-only")
    # a RuntimeDirectory= would be removed, with the socket in it, at stop
    assert values(e, "Service", "RuntimeDirectory") == []
    # soft = hard: the daemon does not need setrlimit (not allowed below)
    assert re.fullmatch(r"\d+", one(e, "Service", "LimitNOFILE"))

    allowed = effective_filter(analyze, values(e, "Service", "SystemCallFilter"))
    # the identity switch (per thread), the transfer, libuv's loop
    needed = {"setfsuid", "setfsgid", "setgroups", "capset", "capget", "prctl",
              "openat2", "openat", "sendfile", "fstat", "newfstatat", "statx",
              "epoll_wait", "epoll_ctl", "accept4", "recvmsg", "sendmsg", "read",
              "write", "writev", "close", "sched_yield", "clone3", "futex",
              "getsockopt", "eventfd2", "rt_sigaction", "mmap", "munmap"}
    assert needed <= allowed, "filtered out: %r" % sorted(needed - allowed)
    # what the daemon never needs and an attacker would want
    # (prlimit64 stays: glibc's getrlimit is prlimit64)
    refused = {"setuid", "setresuid", "setreuid", "setgid", "setresgid", "setregid",
               "chown", "fchownat", "setrlimit", "mount", "ptrace", "bpf", "chroot",
               "kexec_load", "open_by_handle_at", "sched_setscheduler"}
    assert not (refused & allowed), "allowed: %r" % sorted(refused & allowed)
    assert one(e, "Service", "SystemCallErrorNumber") == "EPERM"


def test_socket_is_the_config_default():
    e = unit_entries(SOCKET)
    assert values(e, "Socket", "ListenStream") == [config_default("server", "socket")]
    assert one(e, "Socket", "SocketMode") == config_default("server", "socket_mode")
    assert one(e, "Socket", "FileDescriptorName") == "pipefiled"
    assert one(e, "Install", "WantedBy") == "sockets.target"
    s = unit_entries(SERVICE)
    assert "pipefiled.socket" in one(s, "Unit", "Requires").split()
    assert one(s, "Install", "Also") == "pipefiled.socket"


# --------------------------------------------------------------- install

@pytest.mark.pf_timeout(2 * MAKE_TIMEOUT + 60)
def test_install_with_unit_dir(workdir):
    """An admin's install: PREFIX=/usr/local, units in /etc/systemd/system.
    Every file where expected with its mode; the service starts the
    installed daemon with the installed config; the rest is the checked-in
    text; installing again keeps an edited config."""
    dest = workdir / "dest"
    dest.mkdir()
    args = ["PREFIX=/usr/local", "SYSTEMDUNITDIR=/etc/systemd/system"]
    make_install(dest, *args)
    expect = {
        "usr/local/sbin/pipefiled": 0o755,
        "usr/local/bin/pipefile": 0o755,
        "usr/local/share/doc/pipefiled/pipefiled.ini.example": 0o644,
        "usr/local/share/man/man1/pipefile.1": 0o644,
        "usr/local/share/man/man5/pipefiled.ini.5": 0o644,
        "usr/local/share/man/man8/pipefiled.8": 0o644,
        "etc/systemd/system/pipefiled.service": 0o644,
        "etc/systemd/system/pipefiled.socket": 0o644,
        "usr/local/lib/sysusers.d/pipefiled.conf": 0o644,
        "usr/local/lib/tmpfiles.d/pipefiled.conf": 0o644,
        "etc/logrotate.d/pipefiled": 0o644,
        "etc/pipefiled/pipefiled.ini": 0o644,
        # the client library, for building programs against it
        "usr/local/include/pipefile/pipefile.h": 0o644,
        "usr/local/include/pipefile/proto.h": 0o644,
        "usr/local/lib/libpipefile.a": 0o644,
        "usr/local/lib/pkgconfig/pipefile.pc": 0o644,
    }
    got = {}
    for dirpath, dirnames, filenames in os.walk(dest):
        for n in filenames:
            p = os.path.join(dirpath, n)
            got[os.path.relpath(p, dest)] = stat.S_IMODE(os.lstat(p).st_mode)
        for n in dirnames:
            p = os.path.join(dirpath, n)
            assert stat.S_IMODE(os.lstat(p).st_mode) == 0o755, p
    assert got == expect

    same = {"etc/systemd/system/pipefiled.socket": SOCKET,
            "usr/local/lib/sysusers.d/pipefiled.conf": SYSTEMD / "pipefiled.sysusers",
            "usr/local/lib/tmpfiles.d/pipefiled.conf": SYSTEMD / "pipefiled.tmpfiles",
            "etc/logrotate.d/pipefiled": SYSTEMD / "pipefiled.logrotate",
            "etc/pipefiled/pipefiled.ini": REPO / "config/pipefiled.ini",
            "usr/local/share/man/man1/pipefile.1": REPO / "docs/man/pipefile.1",
            "usr/local/share/man/man5/pipefiled.ini.5": REPO / "docs/man/pipefiled.ini.5",
            "usr/local/share/man/man8/pipefiled.8": REPO / "docs/man/pipefiled.8"}
    for rel, src in same.items():
        assert (dest / rel).read_bytes() == src.read_bytes(), rel
    installed = (dest / "etc/systemd/system/pipefiled.service").read_text().splitlines()
    source = SERVICE.read_text().splitlines()
    assert len(installed) == len(source)
    diff = [(a, b) for a, b in zip(source, installed) if a != b]
    assert diff == [("ExecStart=/usr/sbin/pipefiled -c /etc/pipefiled/pipefiled.ini",
                     "ExecStart=/usr/local/sbin/pipefiled -c /etc/pipefiled/pipefiled.ini")]

    ini = dest / "etc/pipefiled/pipefiled.ini"
    ini.write_text("; the admin's\n[server]\nroot = /srv/files\n")
    out = make_install(dest, *args)
    assert "keeping" in out, out
    assert ini.read_text() == "; the admin's\n[server]\nroot = /srv/files\n"


@pytest.mark.pf_timeout(MAKE_TIMEOUT + 60)
def test_sysconfdir_moves_the_config(workdir):
    dest = workdir / "dest"
    dest.mkdir()
    make_install(dest, "PREFIX=/opt/pf", "SYSCONFDIR=/etc/opt/pf")
    unit = dest / "opt/pf/lib/systemd/system/pipefiled.service"
    assert re.findall(r"(?m)^ExecStart=.*$", unit.read_text()) == [
        "ExecStart=/opt/pf/sbin/pipefiled -c /etc/opt/pf/pipefiled/pipefiled.ini"]
    assert (dest / "etc/opt/pf/pipefiled/pipefiled.ini").is_file()
    assert (dest / "etc/opt/pf/logrotate.d/pipefiled").is_file()
    assert not (dest / "etc/pipefiled").exists()


# ---------------------------------------------- sysusers, tmpfiles, logrotate

def installed_with_user(workdir):
    """`make install PREFIX=/usr` into a fresh root, then sysusers and
    tmpfiles as a package's postinst would run them. Returns (root, uid)."""
    need(os.geteuid() == 0, "needs root (systemd-tmpfiles chowns)")
    sysusers = tool("systemd-sysusers", "systemd")
    tmpfiles = tool("systemd-tmpfiles", "systemd")
    root = workdir / "root"
    root.mkdir()
    make_install(root, "PREFIX=/usr")
    p = run([sysusers, "--root=%s" % root, "pipefiled.conf"])
    assert p.returncode == 0, text(p)
    entry = [l.split(":") for l in (root / "etc/passwd").read_text().splitlines()
             if l.startswith("pipefiled:")]
    assert len(entry) == 1, (root / "etc/passwd").read_text()
    uid, gid, home, shell = int(entry[0][2]), int(entry[0][3]), entry[0][5], entry[0][6]
    assert 0 < uid < 1000 and uid == gid, entry  # a system user, its own group
    assert (home, shell) == ("/nonexistent", "/usr/sbin/nologin"), entry
    assert re.search(r"(?m)^pipefiled:x:%d:$" % gid, (root / "etc/group").read_text())
    p = run([tmpfiles, "--root=%s" % root, "--create", "pipefiled.conf"])
    assert p.returncode == 0, text(p)
    return root, uid


@pytest.mark.pf_timeout(MAKE_TIMEOUT + 60)
def test_sysusers_and_tmpfiles(workdir):
    root, uid = installed_with_user(workdir)
    logdir = os.lstat(root / "var/log/pipefiled")
    assert stat.S_ISDIR(logdir.st_mode) and stat.S_IMODE(logdir.st_mode) == 0o750
    assert (logdir.st_uid, logdir.st_gid) == (uid, uid)
    srv = os.lstat(root / "srv/pipefiled")
    assert stat.S_ISDIR(srv.st_mode) and stat.S_IMODE(srv.st_mode) == 0o755
    assert (srv.st_uid, srv.st_gid) == (0, 0)
    # an admin's served root keeps its owner and mode
    os.chmod(root / "srv/pipefiled", 0o750)
    os.chown(root / "srv/pipefiled", 0, 4242)
    p = run([tool("systemd-tmpfiles", "systemd"), "--root=%s" % root, "--create",
             "pipefiled.conf"])
    assert p.returncode == 0, text(p)
    srv = os.lstat(root / "srv/pipefiled")
    assert (stat.S_IMODE(srv.st_mode), srv.st_uid, srv.st_gid) == (0o750, 0, 4242)


ROTATE_SH = r"""
set -eu
root=$1 out=$2 uid=$3
# the installed root's users, and a /var/log of our own
mount --bind "$root/etc/passwd" /etc/passwd
mount --bind "$root/etc/group" /etc/group
mount -t tmpfs -o mode=0755 pfvarlog /var/log
install -d -o "$uid" -g "$uid" -m 0750 /var/log/pipefiled
printf 'old line\n' > /var/log/pipefiled/access.log
chown "$uid:$uid" /var/log/pipefiled/access.log
chmod 0640 /var/log/pipefiled/access.log
logrotate -d -s "$out/state" "$root/etc/logrotate.d/pipefiled" > "$out/debug" 2>&1
logrotate -f -s "$out/state" "$root/etc/logrotate.d/pipefiled" > "$out/run" 2>&1
cp -a /var/log/pipefiled "$out/logs"
"""


@pytest.mark.pf_timeout(MAKE_TIMEOUT + 90)
def test_logrotate(workdir):
    """logrotate -d parses the installed file without an error; a forced
    rotation, with the installed root's users and a private /var/log
    (unshare), renames access.log, makes a new one 0640 pipefiled's, and
    runs `systemctl kill ... USR1 pipefiled.service` once (a stand-in
    systemctl earlier on PATH records it)."""
    logrotate = tool("logrotate", "logrotate")
    unshare = tool("unshare", "util-linux")
    root, uid = installed_with_user(workdir)
    need(pwd.getpwnam("root").pw_uid == 0, "needs a root user")
    out = workdir / "out"
    out.mkdir()
    fakebin = workdir / "bin"
    fakebin.mkdir()
    (fakebin / "systemctl").write_text(
        '#!/bin/sh\nprintf "%%s\\n" "$*" >> %s/systemctl.calls\n' % out)
    os.chmod(fakebin / "systemctl", 0o755)
    env = {"PATH": "%s:%s:%s" % (fakebin, os.path.dirname(logrotate), SBIN_PATH),
           "LANG": "C.UTF-8"}
    p = run([unshare, "--mount", "--propagation", "private", "sh", "-c", ROTATE_SH, "sh",
             root, out, uid], env=env)
    logs = {n: (out / n).read_text() for n in ("debug", "run") if (out / n).exists()}
    assert p.returncode == 0, "%s\n%r" % (text(p), logs)
    assert "error" not in logs["debug"].lower(), logs["debug"]
    assert "/var/log/pipefiled/access.log" in logs["debug"], logs["debug"]
    assert logs["run"] == "", logs["run"]

    rotated = out / "logs/access.log.1"
    assert rotated.read_text() == "old line\n"
    new = os.lstat(out / "logs/access.log")
    assert stat.S_ISREG(new.st_mode) and new.st_size == 0
    assert (stat.S_IMODE(new.st_mode), new.st_uid, new.st_gid) == (0o640, uid, uid)
    calls = (out / "systemctl.calls").read_text().splitlines()
    assert calls == ["kill --kill-who=main --signal=USR1 pipefiled.service"], calls

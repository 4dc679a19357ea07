"""pipefiled under a real systemd: boot Debian 12 in a container.

A debootstrap'd bookworm (minbase + systemd, systemd-sysv, dbus and the
daemon's runtime libraries), cached under /var/cache/pipefiled-test (or
$PIPEFILED_NSPAWN_CACHE), keyed by the suite, mirror and package list; each
run works on a throw-away copy. Into the copy: `make install DESTDIR=ROOT
PREFIX=/usr SYSTEMDUNITDIR=/lib/systemd/system`, the pipefiled user
(systemd-sysusers --root), `systemctl --root enable pipefiled.socket`, and
the oneshot pipefiled-boot-test.service (boot/), whose script's exit status
ends the container and so becomes systemd-nspawn's.

Inside (boot/boot-test.sh, one result line per check): the socket exists at
boot and the first connection starts the service; two real users each read
their own 0600 file and not the other's, a group-readable file through a
supplementary group; the daemon's /proc status (uid/gid pipefiled, CapEff and
CapBnd exactly setuid+setgid, NoNewPrivs 1, Seccomp 2); the served root is
read-only in its mount namespace; `systemctl reload` applies a good config
and keeps the old one on a bad config; logrotate rotates the access log and
the daemon reopens it; `systemctl stop` during a transfer lets it finish,
stops cleanly, leaves the socket, and the next connection starts it again.
Outside: the container's journal (journalctl -D) has the daemon's messages,
and `-p err` finds the bad config's error but not its info lines.
"""

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD, DAEMON, HERE, IN_CI, REPO, need

SUITE = "bookworm"
# What the booted root needs besides minbase: an init, the daemon's shared
# libraries, /bin/kill (ExecReload), logrotate (the rotation check).
PACKAGES = "systemd systemd-sysv dbus libuv1 libinih1 procps logrotate"
# Bumped when the way the base is made changes, so old caches are not used.
RECIPE = "1"
CACHE = Path(os.environ.get("PIPEFILED_NSPAWN_CACHE", "/var/cache/pipefiled-test"))
BOOT_DIR = HERE / "boot"
BOOT_TIMEOUT = 200  # the checks inside take ~30 s; the unit's own limit is 150 s
DEBOOTSTRAP_TIMEOUT = 600


def mirror():
    """The first URI of an enabled Debian source for SUITE in this
    machine's apt configuration (deb822 or one-line), as
    scripts/fresh-debian-check.sh finds it; deb.debian.org otherwise."""
    for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = open(f).read()
        except OSError:
            continue
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.split()
            if ("deb" in fields.get("types", []) and SUITE in fields.get("suites", [])
                    and fields.get("enabled", ["yes"])[0].lower() != "no" and fields.get("uris")):
                return fields["uris"][0]
    for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            lines = open(f).read().splitlines()
        except OSError:
            continue
        for line in lines:
            w = line.split()
            if not w or w[0] != "deb":
                continue
            i = 1
            if w[i].startswith("["):
                while not w[i].endswith("]"):
                    i += 1
                i += 1
            if len(w) > i + 1 and w[i + 1] == SUITE:
                return w[i]
    return "http://deb.debian.org/debian"


def base_root():
    """The cached pristine root, built on first use (~250 MB, 1-3 min).
    Built in a temporary dir and renamed, under a lock, so a half-built or
    concurrently built root is never used."""
    m = mirror()
    key = hashlib.sha256(("%s|%s|%s|%s" % (RECIPE, SUITE, m, PACKAGES)).encode()).hexdigest()[:16]
    base = CACHE / ("nspawn-root-" + key)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "nspawn-root.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (base / ".pipefiled-boot-base").exists():
            return base
        tmp = Path(str(base) + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        log = Path(str(base) + ".debootstrap.log")
        with open(log, "wb") as out:
            p = subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=" + PACKAGES.replace(" ", ","),
                 SUITE, str(tmp), m],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                timeout=DEBOOTSTRAP_TIMEOUT)
        assert p.returncode == 0, "debootstrap failed (%d); see %s:\n%s" % (
            p.returncode, log, log.read_text(errors="replace")[-3000:])
        subprocess.run(["rm", "-rf", str(tmp / "var/cache/apt/archives")], check=False)
        (tmp / ".pipefiled-boot-base").write_text(
            "suite=%s\nmirror=%s\npackages=%s\nbuilt=%s\n" % (SUITE, m, PACKAGES, time.strftime("%FT%TZ", time.gmtime())))
        shutil.rmtree(base, ignore_errors=True)
        tmp.rename(base)
        return base


def run(argv, timeout=120, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, **kw)
    assert p.returncode == 0, "%s failed (%d):\n%s\n%s" % (
        " ".join(map(str, argv)), p.returncode, p.stdout.decode(errors="replace"),
        p.stderr.decode(errors="replace"))
    return p.stdout.decode(errors="replace")


def install_into(root):
    """What an admin does: make install, then the user and the socket."""
    run(["make", "-C", str(REPO), "--no-print-directory", "install", "DESTDIR=%s" % root,
         "PREFIX=/usr", "SYSTEMDUNITDIR=/lib/systemd/system", "BUILD=%s" % BUILD],
        timeout=240, preexec_fn=lambda: os.umask(0o022))
    run(["systemd-sysusers", "--root=%s" % root])
    run(["systemctl", "--root=%s" % root, "enable", "pipefiled.socket"])
    lib = root / "usr/local/lib/pipefiled-boot"
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BOOT_DIR / "boot-test.sh", lib / "boot-test.sh")
    os.chmod(lib / "boot-test.sh", 0o755)
    unit = root / "etc/systemd/system/pipefiled-boot-test.service"
    shutil.copy2(BOOT_DIR / "pipefiled-boot-test.service", unit)
    os.chmod(unit, 0o644)
    run(["systemctl", "--root=%s" % root, "enable", "pipefiled-boot-test.service"])


def journal(root, *args):
    return run(["journalctl", "-D", str(root / "var/log/journal"), "--no-pager", "-o", "cat"] + list(args))


def journal_or_why(root, *args):
    """For a failure message: the journal, or why there is none."""
    try:
        return journal(root, *args)
    except (AssertionError, subprocess.SubprocessError) as e:
        return "(no journal: %s)" % e


@pytest.mark.pf_timeout(900)
def test_boot_debian12_with_systemd():
    need(os.geteuid() == 0, "needs root (debootstrap, systemd-nspawn)")
    for t in ("systemd-nspawn", "debootstrap", "journalctl", "systemd-sysusers", "systemctl", "make"):
        need(shutil.which(t) is not None, "needs %s (packages systemd-container, debootstrap, systemd)" % t)
    ldd = subprocess.run(["ldd", str(DAEMON)], capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    if b"libasan" in ldd.stdout or b"libubsan" in ldd.stdout:
        # The container has no sanitizer runtime; the sanitizer build's
        # behaviour is what the rest of `make asan` checks.
        pytest.skip("a sanitizer build cannot run in the plain Debian root")
    # systemd-nspawn refuses to start without a cgroup hierarchy ("Failed to
    # determine whether the unified cgroups hierarchy is used: No medium
    # found"): a chroot with a bare sysfs has none.
    need(os.path.ismount("/sys/fs/cgroup"),
         "needs a cgroup hierarchy mounted at /sys/fs/cgroup to boot a container")

    base = base_root()
    root = CACHE / ("nspawn-run-%d" % os.getpid())
    shutil.rmtree(root, ignore_errors=True)
    try:
        run(["cp", "-a", "--reflink=auto", str(base), str(root)], timeout=300)
        install_into(root)
        t0 = time.monotonic()
        console_log = CACHE / "nspawn-console.log"
        with open(console_log, "wb") as console:
            p = subprocess.run(
                ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit",
                 "--private-network", "-M", "pipefiled-boot", "-b"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                timeout=BOOT_TIMEOUT)
        secs = time.monotonic() - t0
        res_file = root / "var/lib/pipefiled-boot/results"
        results = res_file.read_text() if res_file.exists() else "(no results file)\n"
        print("boot test: nspawn exited %d after %.0f s\n%s" % (p.returncode, secs, results))
        daemon_log = journal_or_why(root, "-u", "pipefiled.service")
        failed = [line for line in results.splitlines() if line.startswith("FAIL")]
        assert p.returncode == 0 and not failed, (
            "in the container: %d failed (nspawn exit %d):\n%s\n--- pipefiled.service journal:\n%s"
            "\n--- console (%s), its end:\n%s" % (
                len(failed), p.returncode, results, daemon_log[-4000:], console_log,
                console_log.read_text(errors="replace")[-3000:]))
        assert "ok - " in results

        # The journal, read from outside: the daemon's own messages, with
        # priorities (JOURNAL_STREAM), so -p err picks the bad config's
        # error and leaves its info lines out.
        mine = journal(root, "_SYSTEMD_UNIT=pipefiled.service", "_COMM=pipefiled")
        errs = journal(root, "_SYSTEMD_UNIT=pipefiled.service", "_COMM=pipefiled", "-p", "err")
        assert mine.strip(), "no message of pipefiled in the container's journal:\n" + daemon_log
        assert "banana" in errs or "workers" in errs, \
            "journalctl -p err lacks the bad config's error:\n" + errs
        assert len(errs.splitlines()) < len(mine.splitlines()), \
            "every daemon line is an error (priority prefixes missing?):\n" + mine
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""`make deb` builds the Debian package an admin installs with
`apt install ./pipefiled_*.deb`, and the package holds what it should.

The package is built once for the module (dpkg-buildpackage in a copy of the
tree under BUILD/deb, about 20 s) and read with dpkg-deb: exactly the
expected files with their modes, owned by root (the daemon, the client, the
units in /lib/systemd/system, sysusers.d, tmpfiles.d, logrotate, the config,
the man pages), the same bytes as the tree's; /etc/pipefiled/pipefiled.ini
and the logrotate file as conffiles; Depends naming libuv1, libinih1 and
procps; maintainer scripts that create the user before the directories and
enable and start only the socket.

Then it is installed for real into a throw-away root (dpkg --root, scripts
run chrootless, no systemd running, as in a chroot or an image being
built): dpkg succeeds, the pipefiled user and /var/log/pipefiled exist,
pipefiled.socket is enabled and pipefiled.service is not; an admin's edit
of the config survives reinstalling; purge removes the config and the
enablement. lintian is not run."""

import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from conftest import BUILD, REPO, need

BUILD_TIMEOUT = 300  # about 20 s here; generous for a loaded machine
DPKG_TIMEOUT = 60

# Path in the package -> mode. Files only; every one owned by root:root.
EXPECTED_FILES = {
    "usr/sbin/pipefiled": 0o755,
    "usr/bin/pipefile": 0o755,
    "lib/systemd/system/pipefiled.service": 0o644,
    "lib/systemd/system/pipefiled.socket": 0o644,
    "usr/lib/sysusers.d/pipefiled.conf": 0o644,
    "usr/lib/tmpfiles.d/pipefiled.conf": 0o644,
    "etc/logrotate.d/pipefiled": 0o644,
    "etc/pipefiled/pipefiled.ini": 0o644,
    "usr/share/doc/pipefiled/pipefiled.ini.example": 0o644,
    "usr/share/doc/pipefiled/changelog.gz": 0o644,
    "usr/share/doc/pipefiled/copyright": 0o644,
    "usr/share/man/man1/pipefile.1.gz": 0o644,
    "usr/share/man/man5/pipefiled.ini.5.gz": 0o644,
    "usr/share/man/man8/pipefiled.8.gz": 0o644,
}
# Path in the package -> the tree's file it must equal byte for byte (the
# packaged paths are the ones the units already name, so nothing is
# rewritten).
SAME_AS_TREE = {
    "lib/systemd/system/pipefiled.service": "systemd/pipefiled.service",
    "lib/systemd/system/pipefiled.socket": "systemd/pipefiled.socket",
    "usr/lib/sysusers.d/pipefiled.conf": "systemd/pipefiled.sysusers",
    "usr/lib/tmpfiles.d/pipefiled.conf": "systemd/pipefiled.tmpfiles",
    "etc/logrotate.d/pipefiled": "systemd/pipefiled.logrotate",
    "etc/pipefiled/pipefiled.ini": "config/pipefiled.ini",
    "usr/share/doc/pipefiled/pipefiled.ini.example": "config/pipefiled.ini",
    "usr/share/man/man1/pipefile.1.gz": "docs/man/pipefile.1",
    "usr/share/man/man5/pipefiled.ini.5.gz": "docs/man/pipefiled.ini.5",
    "usr/share/man/man8/pipefiled.8.gz": "docs/man/pipefiled.8",
}
CONFFILES = {"/etc/pipefiled/pipefiled.ini", "/etc/logrotate.d/pipefiled"}
SOCKET_LINK = "etc/systemd/system/sockets.target.wants/pipefiled.socket"


def run(cmd, timeout=DPKG_TIMEOUT, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def deb():
    """Build the package with `make deb`; return the .deb's path."""
    for tool, pkg in (("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"), ("make", "make")):
        need(shutil.which(tool) is not None, "needs %s (%s; sh scripts/deps.sh deb)" % (tool, pkg))
    # Without the outer make's MAKEFLAGS (`make asan` passes CFLAGS in
    # them): `make deb` itself is what an admin runs.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    p = run(["make", "--no-print-directory", "BUILD=%s" % BUILD, "deb"], timeout=BUILD_TIMEOUT, cwd=REPO, env=env)
    assert p.returncode == 0, "make deb failed:\n%s\n%s" % (p.stdout[-4000:], p.stderr[-4000:])
    debs = [f for f in os.listdir(BUILD / "deb") if f.startswith("pipefiled_") and f.endswith(".deb")]
    assert len(debs) == 1, "expected one pipefiled_*.deb in %s, found %s" % (BUILD / "deb", debs)
    return BUILD / "deb" / debs[0]


def dpkg_deb(*args):
    p = run(["dpkg-deb", *args])
    assert p.returncode == 0, "dpkg-deb %s failed: %s" % (" ".join(map(str, args)), p.stderr)
    return p.stdout


def control_file(deb, name):
    """A file of the package's control archive (conffiles, postinst, ...)."""
    p = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, timeout=DPKG_TIMEOUT)
    assert p.returncode == 0, p.stderr
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
        try:
            return t.extractfile("./" + name).read().decode()
        except KeyError:
            return None


def test_files_modes_and_owners(deb):
    """Exactly the expected files, with their modes, all root's; units in
    /lib/systemd/system where bookworm's systemd looks for packaged ones."""
    found = {}
    owners = {}
    for line in dpkg_deb("-c", str(deb)).splitlines():
        # -rwxr-xr-x root/root  125176 2026-12-01 12:00 ./usr/sbin/pipefiled
        perms, owner, _size, _date, _time, path = line.split(None, 5)
        path = path.split(" -> ")[0][2:]
        owners[path or "."] = owner
        if perms[0] == "d":
            continue
        assert perms[0] == "-", "not a regular file in the package: %s" % line
        mode = 0
        for i, c in enumerate(perms[1:10]):
            if c != "-":
                mode |= 1 << (8 - i)
        found[path] = mode
    assert found == EXPECTED_FILES, "package files differ: extra %s, missing %s, modes %s" % (
        sorted(set(found) - set(EXPECTED_FILES)),
        sorted(set(EXPECTED_FILES) - set(found)),
        {p: (oct(found[p]), oct(m)) for p, m in EXPECTED_FILES.items() if p in found and found[p] != m},
    )
    assert set(owners.values()) == {"root/root"}, "files not owned by root: %s" % {
        p: o for p, o in owners.items() if o != "root/root"
    }


def test_contents_are_the_trees(deb, tmp_path):
    """The units, snippets, config and man pages are the tree's own files,
    and the packaged daemon runs (--version)."""
    dpkg_deb("-x", str(deb), str(tmp_path))
    for packaged, source in SAME_AS_TREE.items():
        data = (tmp_path / packaged).read_bytes()
        if packaged.endswith(".gz"):
            data = gzip.decompress(data)
        assert data == (REPO / source).read_bytes(), "%s in the package differs from %s" % (packaged, source)
    p = run([str(tmp_path / "usr/sbin/pipefiled"), "--version"])
    assert p.returncode == 0 and "pipefiled" in p.stdout + p.stderr, (p.returncode, p.stdout, p.stderr)


def test_conffiles(deb):
    """The config and the logrotate rule are conffiles: dpkg keeps an
    admin's edits across upgrades and asks before replacing them."""
    conffiles = control_file(deb, "conffiles")
    assert conffiles is not None, "the package has no conffiles"
    assert set(conffiles.split()) == CONFFILES


def test_depends(deb):
    """Depends names the libraries the daemon links (libuv1, libinih1),
    procps (/bin/kill: pipefiled.service's ExecReload) and something
    that provides systemd-sysusers (the postinst creates the user)."""
    fields = dpkg_deb("-f", str(deb), "Package", "Architecture", "Depends")
    depends = fields.split("Depends:", 1)[1].strip()
    alternatives = [[a.strip().split()[0] for a in d.split("|")] for d in depends.split(",")]
    names = {a[0] for a in alternatives if len(a) == 1}
    assert {"libuv1", "libinih1", "procps"} <= names, depends
    assert any("systemd" in a and "systemd-standalone-sysusers" in a for a in alternatives), depends
    assert "Package: pipefiled" in fields and "Architecture: all" not in fields, fields


def test_maintainer_scripts(deb):
    """The postinst creates the user before the directories it owns, and
    enables and starts the socket only, and starts nothing without a
    running systemd."""
    postinst = control_file(deb, "postinst")
    assert postinst is not None
    i_users = postinst.find("systemd-sysusers")
    i_tmpfiles = postinst.find("systemd-tmpfiles")
    assert 0 <= i_users < i_tmpfiles, "systemd-sysusers must run before systemd-tmpfiles:\n" + postinst
    assert "pipefiled.conf" in postinst[i_users : postinst.find("\n", i_users)]
    assert "deb-systemd-helper enable 'pipefiled.socket'" in postinst
    invokes = [line.strip() for line in postinst.splitlines() if "deb-systemd-invoke" in line]
    assert invokes and all("'pipefiled.socket'" in line for line in invokes), invokes
    # Every start is under the "is systemd running" test (a chroot has none).
    for block in postinst.split("# Automatically added by")[1:]:
        if "deb-systemd-invoke" in block:
            assert "[ -d /run/systemd/system ]" in block, block


def dpkg_root(root, *args):
    """dpkg on a throw-away root, maintainer scripts run on this machine with
    DPKG_ROOT set (as debootstrap and image builders do), in a mount
    namespace with an empty /run, so systemd never seems to be running."""
    need(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    need(os.geteuid() == 0, "needs root (dpkg --root, mount)")
    cmd = (
        'mount -t tmpfs tmpfs /run && exec dpkg --root="$0" --force-script-chrootless '
        '--force-depends --log=/dev/null "$@"'
    )
    return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd, str(root), *args])


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "var/lib/dpkg/info").mkdir(parents=True)
    (r / "var/lib/dpkg/updates").mkdir()
    (r / "var/lib/dpkg/status").touch()
    return r


def test_install_without_systemd(deb, root):
    """Installed where no systemd runs, the maintainer scripts succeed: the
    pipefiled user and group exist, /var/log/pipefiled is theirs (0750),
    the socket is enabled, the service is not, and nothing was started."""
    p = dpkg_root(root, "-i", str(deb))
    assert p.returncode == 0, "dpkg -i failed:\n%s\n%s" % (p.stdout, p.stderr)
    st = run(["dpkg", "--root=%s" % root, "-s", "pipefiled"]).stdout
    assert "Status: install ok installed" in st, st

    users = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()]
    mine = [u for u in users if u[0] == "pipefiled"]
    assert len(mine) == 1, users
    uid, gid, home, shell = int(mine[0][2]), int(mine[0][3]), mine[0][5], mine[0][6]
    assert 0 < uid < 1000 and shell == "/usr/sbin/nologin" and home == "/nonexistent", mine
    groups = [g.split(":") for g in (root / "etc/group").read_text().splitlines()]
    assert ["pipefiled", "x", str(gid), ""] in groups, groups

    logdir = os.stat(root / "var/log/pipefiled")
    assert stat.S_ISDIR(logdir.st_mode) and stat.S_IMODE(logdir.st_mode) == 0o750
    assert (logdir.st_uid, logdir.st_gid) == (uid, gid)
    assert (root / "srv/pipefiled").is_dir()

    link = root / SOCKET_LINK
    assert link.is_symlink() and os.readlink(link) == "/lib/systemd/system/pipefiled.socket"
    enabled = [str(p.relative_to(root)) for p in (root / "etc/systemd/system").rglob("*")]
    assert not [e for e in enabled if "pipefiled.service" in e], enabled


def test_config_kept_then_purged(deb, root):
    """An admin's edit of /etc/pipefiled/pipefiled.ini survives installing
    the package again; purge removes the config and the socket's
    enablement, and leaves nothing of the package's in the root."""
    assert dpkg_root(root, "-i", str(deb)).returncode == 0
    ini = root / "etc/pipefiled/pipefiled.ini"
    edited = ini.read_text() + "\n; edited by the admin\n"
    ini.write_text(edited)
    p = dpkg_root(root, "--force-confold", "-i", str(deb))
    assert p.returncode == 0, p.stderr
    assert ini.read_text() == edited, "reinstalling replaced the admin's config"

    p = dpkg_root(root, "--purge", "pipefiled")
    assert p.returncode == 0, "dpkg --purge failed:\n%s\n%s" % (p.stdout, p.stderr)
    assert not ini.exists() and not (root / "etc/pipefiled").exists()
    assert not os.path.lexists(root / SOCKET_LINK)
    for packaged in EXPECTED_FILES:
        assert not (root / packaged).exists(), "%s left after purge" % packaged

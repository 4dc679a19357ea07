"""`make install` honours DESTDIR and PREFIX: it installs exactly
PREFIX/sbin/pipefiled, PREFIX/bin/pipefile (mode 0755), the client
library (PREFIX/include/pipefile/pipefile.h and proto.h, PREFIX/lib/
libpipefile.a and PREFIX/lib/pkgconfig/pipefile.pc),
PREFIX/share/doc/pipefiled/pipefiled.ini.example, the man pages
pipefile(1), pipefiled.ini(5) and pipefiled(8) under PREFIX/share/man, the
systemd units under
PREFIX/lib/systemd/system, sysusers.d and tmpfiles.d snippets under PREFIX/lib,
and in /etc (whatever the PREFIX: a system service's config lives there)
pipefiled/pipefiled.ini and logrotate.d/pipefiled (all 0644), under DESTDIR;
copies of the build the suite tests, and the installed daemon runs: --version,
and --check-config on a copy of the example pointed at an existing root.
test_units.py checks the units, their directories and what they contain.

The installed man pages render without a groff warning, man(1) finds them
under PREFIX/share/man, and they cannot fall behind: pipefiled.ini(5) lists
every key of config/pipefiled.ini with its default, pipefile(1) every exit
code of `pipefile --help`, pipefiled(8) every option, signal and exit code
of `pipefiled --help`."""

import configparser
import filecmp
import os
import re
import shutil
import stat
import subprocess

import pytest

from conftest import BUILD, REPO, need

MAKE_TIMEOUT = 240  # nothing to build when the suite's build is current

# Relative to PREFIX.
EXPECTED_FILES = {
    "sbin/pipefiled": 0o755,
    "bin/pipefile": 0o755,
    "share/doc/pipefiled/pipefiled.ini.example": 0o644,
    "share/man/man1/pipefile.1": 0o644,
    "share/man/man5/pipefiled.ini.5": 0o644,
    "share/man/man8/pipefiled.8": 0o644,
    "lib/systemd/system/pipefiled.service": 0o644,
    "lib/systemd/system/pipefiled.socket": 0o644,
    "lib/sysusers.d/pipefiled.conf": 0o644,
    "lib/tmpfiles.d/pipefiled.conf": 0o644,
    # the client library (test_cli_product.py builds a program against it)
    "include/pipefile/pipefile.h": 0o644,
    "include/pipefile/proto.h": 0o644,
    "lib/libpipefile.a": 0o644,
    "lib/pkgconfig/pipefile.pc": 0o644,
}
MAN_PAGES = ["man1/pipefile.1", "man5/pipefiled.ini.5", "man8/pipefiled.8"]
# Relative to /, for every PREFIX.
ETC_FILES = {
    "etc/pipefiled/pipefiled.ini": 0o644,
    "etc/logrotate.d/pipefiled": 0o644,
}


def make_install(destdir, prefix):
    need(shutil.which("make") is not None, "needs make")
    need(shutil.which("install") is not None, "needs install (coreutils)")
    # The environment is passed on as it is: under `make asan` MAKEFLAGS
    # carries the sanitizer CFLAGS, so should anything in BUILD be out of
    # date it is rebuilt the way the rest of that build was.
    p = subprocess.run(
        ["make", "-C", str(REPO), "--no-print-directory", "install",
         "DESTDIR=%s" % destdir, "PREFIX=%s" % prefix, "BUILD=%s" % BUILD],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=MAKE_TIMEOUT,
        preexec_fn=lambda: os.umask(0o022))
    assert p.returncode == 0, "make install failed (%d):\n%s\n%s" % (
        p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


def tree(root):
    """Every file and directory under root, relative, '/'-separated."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def expected_tree(prefix):
    rel = prefix.strip("/")
    files = {rel + "/" + f: mode for f, mode in EXPECTED_FILES.items()}
    files.update(ETC_FILES)
    dirs = set()
    for f in files:
        parts = f.split("/")[:-1]
        dirs |= {"/".join(parts[:i + 1]) for i in range(len(parts))}
    return dirs, files


def run(argv, timeout=15):
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)


def check_installed(destdir, prefix, workdir):
    dirs, files = expected_tree(prefix)
    got = tree(destdir)
    assert set(got) == dirs | set(files), "installed: %r" % sorted(got)
    for d in dirs:
        assert stat.S_ISDIR(got[d].st_mode), d
        assert stat.S_IMODE(got[d].st_mode) == 0o755, (d, oct(got[d].st_mode))
    for f, mode in files.items():
        st = got[f]
        assert stat.S_ISREG(st.st_mode), f
        assert stat.S_IMODE(st.st_mode) == mode, (f, oct(st.st_mode))
    base = destdir / prefix.strip("/")
    # the very build the suite tests, and the documented example
    assert filecmp.cmp(base / "sbin/pipefiled", BUILD / "pipefiled", shallow=False)
    assert filecmp.cmp(base / "bin/pipefile", BUILD / "pipefile", shallow=False)
    example = base / "share/doc/pipefiled/pipefiled.ini.example"
    assert filecmp.cmp(example, REPO / "config/pipefiled.ini", shallow=False)
    assert filecmp.cmp(destdir / "etc/pipefiled/pipefiled.ini", REPO / "config/pipefiled.ini",
                       shallow=False)
    for page in MAN_PAGES:
        assert filecmp.cmp(base / "share/man" / page, REPO / "docs/man" / os.path.basename(page),
                           shallow=False), page
    # the installed service starts this install's daemon
    unit = (base / "lib/systemd/system/pipefiled.service").read_text()
    assert re.findall(r"(?m)^ExecStart=.*$", unit) == [
        "ExecStart=%s/sbin/pipefiled -c /etc/pipefiled/pipefiled.ini" % prefix], unit

    daemon = base / "sbin/pipefiled"
    p = run([daemon, "--version"])
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(rb"pipefiled \d+\.\d+\.\d+\S*\n", p.stdout), p.stdout
    assert p.stdout == run([BUILD / "pipefiled", "--version"]).stdout
    p = run([base / "bin/pipefile", "--version"])
    assert p.returncode == 0 and p.stdout.startswith(b"pipefile "), (p.stdout, p.stderr)

    # the example, with its root pointed at a directory that exists
    served = workdir / ("served-" + prefix.strip("/").replace("/", "-"))
    served.mkdir(mode=0o755)
    text = example.read_text()
    assert len(re.findall(r"(?m)^root = ", text)) == 1, "example has no single root line"
    ini = workdir / ("example-" + prefix.strip("/").replace("/", "-") + ".ini")
    ini.write_text(re.sub(r"(?m)^root = .*$", "root = %s" % served, text))
    p = run([daemon, "-c", ini, "--check-config"])
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert p.stderr == b""
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    cp.read_string(p.stdout.decode())
    assert cp["server"]["root"] == str(served)
    # what it prints is itself a valid config, with the same values
    printed = workdir / (ini.name + ".printed")
    printed.write_bytes(p.stdout)
    p2 = run([daemon, "-c", printed, "--check-config"])
    assert p2.returncode == 0 and p2.stdout == p.stdout, p2.stderr

    # and a root that does not exist is a config error (EX_CONFIG)
    missing = workdir / "no-such-dir"
    ini.write_text(re.sub(r"(?m)^root = .*$", "root = %s" % missing, text))
    p = run([daemon, "-c", ini, "--check-config"])
    assert p.returncode == 78, (p.returncode, p.stderr)
    assert p.stdout == b"" and b"root" in p.stderr and str(missing).encode() in p.stderr, p.stderr


@pytest.mark.pf_timeout(2 * MAKE_TIMEOUT + 60)
@pytest.mark.parametrize("prefix", ["/usr", "/opt/pf"])
def test_make_install(workdir, prefix):
    destdir = workdir / "dest"
    destdir.mkdir()
    make_install(destdir, prefix)
    check_installed(destdir, prefix, workdir)
    # installing again over the same tree changes nothing
    make_install(destdir, prefix)
    again = workdir / "again"
    again.mkdir()
    check_installed(destdir, prefix, again)


@pytest.mark.pf_timeout(MAKE_TIMEOUT + 60)
def test_prefix_decides_where(workdir):
    """PREFIX=/opt/pf puts everything but the config and logrotate file (in
    /etc) under /opt/pf and nothing under /usr (the default prefix is
    /usr/local: not used either)."""
    destdir = workdir / "dest"
    destdir.mkdir()
    make_install(destdir, "/opt/pf")
    assert sorted(os.listdir(destdir)) == ["etc", "opt"]
    assert sorted(os.listdir(destdir / "etc")) == ["logrotate.d", "pipefiled"]
    assert sorted(os.listdir(destdir / "opt")) == ["pf"]
    assert not (destdir / "usr").exists()


# ------------------------------------------------------------- man pages

@pytest.fixture(scope="module")
def mandir(tmp_path_factory):
    """The man directory of `make install PREFIX=/usr`, installed once for
    the tests below."""
    dest = tmp_path_factory.mktemp("man-dest")
    make_install(dest, "/usr")
    return dest / "usr/share/man"


def render(page):
    """The page as man(1) shows it, plain text, 80 columns; groff's warnings
    (-ww: all of them) must be none."""
    need(shutil.which("groff") is not None, "needs groff (Debian package groff-base)")
    p = run(["groff", "-man", "-Tutf8", "-ww", "-rLL=80n", "-P-cbou", page])
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0 and err == "", "%s: groff warns:\n%s" % (page, err)
    out = p.stdout.decode()
    assert out.strip(), page
    return out


def lines(rendered):
    return [" ".join(l.split()) for l in rendered.splitlines()]


def section(rendered, name):
    """The lines of one section (its heading at column 0) of a rendered page."""
    out, inside = [], False
    for l in rendered.splitlines():
        if l and not l[0].isspace():
            inside = l.strip() == name
        elif inside:
            out.append(" ".join(l.split()))
    assert out, "no section %s" % name
    return out


@pytest.mark.pf_timeout(MAKE_TIMEOUT + 60)
@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_renders_and_is_found(mandir, page):
    """Each installed page renders without a single groff warning, names
    itself, and man(1) finds it by name and section under PREFIX/share/man."""
    text = render(mandir / page)
    name, sect = os.path.basename(page).rsplit(".", 1)
    assert re.search(r"(?m)^NAME\n\s+%s \S+ " % re.escape(name), text), text[:300]
    need(shutil.which("man") is not None, "needs man (Debian package man-db)")
    p = subprocess.run(["man", "-w", sect, name], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=15, env=dict(os.environ, MANPATH=str(mandir)))
    assert p.returncode == 0 and p.stdout.decode().strip() == str(mandir / page), (
        p.stdout, p.stderr)
    p = subprocess.run(["man", "-l", str(mandir / page)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=15,
                       env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
    assert p.returncode == 0 and name.encode() in p.stdout and p.stderr == b"", p.stderr


@pytest.mark.pf_timeout(MAKE_TIMEOUT + 60)
def test_ini_page_lists_every_key(mandir):
    """pipefiled.ini(5) shows every key of config/pipefiled.ini as
    "key = default", in its own section, and no key that is not there."""
    want = {}
    sect = None
    for l in (REPO / "config/pipefiled.ini").read_text().splitlines():
        m = re.fullmatch(r"\[(\w+)\]", l)
        if m:
            sect = m.group(1)
            continue
        m = re.fullmatch(r"(\w+) =(?: (.*))?", l)
        if m:
            want.setdefault(sect, []).append("%s = %s" % (m.group(1), m.group(2) or ""))
    assert sum(len(v) for v in want.values()) >= 20, want
    text = render(mandir / "man5/pipefiled.ini.5")
    for sect, keys in want.items():
        got = [l for l in section(text, "[%s]" % sect) if re.fullmatch(r"\w+ =( \S+)?", l)]
        assert got == [k.strip() for k in keys], (sect, got)


@pytest.mark.pf_timeout(MAKE_TIMEOUT + 60)
def test_client_page_lists_every_exit_code(mandir):
    """Every exit code `pipefile --help` lists is in pipefile(1)'s EXIT
    STATUS, with the same wire status for the server's answers, and no
    other."""
    p = run([BUILD / "pipefile", "--help"])
    assert p.returncode == 0, p.stderr
    helptext = p.stdout.decode().split("exit codes:\n", 1)[1]
    codes = dict(re.findall(r"(?m)^\s+(\d+)\s+(.*)$", helptext))
    assert len(codes) >= 15 and "77" in codes, codes
    status = section(render(mandir / "man1/pipefile.1"), "EXIT STATUS")
    got = {}
    for l in status:
        m = re.match(r"(\d+) (.*)", l)
        if m:
            got[m.group(1)] = m.group(2)
    assert sorted(got, key=int) == sorted(codes, key=int), (got, codes)
    for code, what in codes.items():
        m = re.match(r"the server answered (\w+):", what)
        if m:
            assert "answered %s:" % m.group(1) in got[code], (code, got[code])


@pytest.mark.pf_timeout(MAKE_TIMEOUT + 60)
def test_daemon_page_covers_help(mandir):
    """pipefiled(8) has every option and signal of `pipefiled --help`, the
    exit codes it names (0, 78) and the usage error (64), and the service
    manager's variables the daemon reads."""
    p = run([BUILD / "pipefiled", "--help"])
    assert p.returncode == 0, p.stderr
    helptext = p.stdout.decode()
    text = render(mandir / "man8/pipefiled.8")
    options = " ".join(section(text, "OPTIONS"))
    for opt in set(re.findall(r"(?<![\w-])(--?[\w-]+)", helptext.split("Signals:")[0])):
        assert opt in options, opt
    signals = " ".join(section(text, "SIGNALS"))
    for sig in set(re.findall(r"\bSIG[A-Z0-9]+", helptext)):
        assert sig in signals, sig
    status = [l.split()[0] for l in section(text, "EXIT STATUS") if re.match(r"\d+\b", l)]
    assert {"0", "64", "78"} <= set(status), status
    env = " ".join(section(text, "ENVIRONMENT"))
    for var in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                "JOURNAL_STREAM"):
        assert var in env, var

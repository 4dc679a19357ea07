"""Whom pipefiled.exe trusts before it reads a config or installs itself.

A config decides everything about a daemon that impersonates every client
(strict_modes, the root, the pipe's DACL), so it cannot vouch for itself:
the daemon (--console, --check-config, the service) refuses, exit 78, a
config file that someone other than SYSTEM, Administrators or its own
account may change, or whose folder (or an ancestor's entries) they may,
whatever the file's strict_modes says. `pipefiled install` refuses an
existing %ProgramData%\\pipefiled (files\\, logs\\, pipefiled.ini) that
fails the same check (any user may create that folder before install),
and a pipefiled.exe in a folder others may write (a planted IPHLPAPI.DLL
or USERENV.dll beside it would run in the service).

Under wine a DACL is the Unix mode: chmod o+w shows as Everyone granted
write. /tmp shows as Everyone may delete entries (wine has no sticky bit),
so everything here lives on drive C: (the prefix's drive_c), whose chain
wine shows as the session's user's, 0755."""

import os
import re
import shutil
import subprocess

import pytest

import conftest
from conftest import WinDaemon, token_of

NAME = "pipefiled"


def cpath(wine, p):
    """The C:\\ name of a path under the prefix's drive_c."""
    rel = os.path.relpath(str(p), str(wine.prefix / "drive_c"))
    assert not rel.startswith(".."), p
    return "C:\\" + rel.replace("/", "\\")


@pytest.fixture
def cdir(wine, workdir):
    """A test dir of its own on drive C: (root-owned, 0755 chain)."""
    d = wine.prefix / "drive_c" / ("pft-" + token_of(workdir))
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cdaemon(wine, cdir, workdir, monkeypatch):
    """A WinDaemon whose dir, config, root and log are on drive C:."""
    real = conftest.winpath
    drive_c = str(wine.prefix / "drive_c")
    monkeypatch.setattr(conftest, "winpath",
                        lambda p: cpath(wine, p) if str(p).startswith(drive_c) else real(p))
    d = WinDaemon(wine, cdir / "d0", "\\\\.\\pipe\\pftest-%s-0" % token_of(workdir))
    yield d
    problems = d.teardown()
    assert not problems, problems


@pytest.fixture
def programdata(wine, workdir):
    """%ProgramData%\\pipefiled absent for the test (an existing one, left by
    another test, is put aside and back), removed after it; the service
    uninstalled after it."""
    data = wine.prefix / "drive_c" / "ProgramData" / NAME
    aside = data.with_name(NAME + ".aside-" + token_of(workdir))
    if data.exists():
        data.rename(aside)
    yield data
    wine.run("net", "stop", NAME, timeout=60)
    wine.run(wine.exe("pipefiled.exe"), "uninstall", timeout=60)
    shutil.rmtree(data, ignore_errors=True)
    if aside.exists():
        aside.rename(data)


@pytest.fixture
def program(wine, workdir):
    """pipefiled.exe in C:\\Program Files\\pipefiled-TOKEN (0755, as an
    administrator's install would be)."""
    d = wine.prefix / "drive_c" / "Program Files" / ("pipefiled-" + token_of(workdir))
    d.mkdir(mode=0o755)
    shutil.copy2(wine.exe("pipefiled.exe"), d / "pipefiled.exe")
    os.chmod(d / "pipefiled.exe", 0o755)
    yield d / "pipefiled.exe"
    shutil.rmtree(d, ignore_errors=True)


def registered(wine):
    return wine.run("sc", "query", NAME, timeout=30).returncode == 0


def text(r):
    return (r.stdout + r.stderr).decode("utf-8", "replace")


# ------------------------------------------------------------- the config

def test_console_serves_with_a_trusted_config(cdaemon):
    cdaemon.put("a.txt", b"trusted\n")
    cdaemon.start()
    assert cdaemon.get("/a.txt").body == b"trusted\n"


@pytest.mark.parametrize("what", ["file", "folder"])
def test_console_refuses_a_config_everyone_may_write(cdaemon, what):
    # strict_modes = no (the test config's) must not let the file vouch for itself
    assert cdaemon.config["server"]["strict_modes"] == "no"
    cdaemon.write_ini()
    os.chmod(cdaemon.ini if what == "file" else cdaemon.dir, 0o666 if what == "file" else 0o777)
    cdaemon.expect_exit = True
    cdaemon.start(wait=False)
    rc = cdaemon.wait_exit(30)
    err = cdaemon.stderr()
    assert rc == 78, (rc, err)
    named = cpath(cdaemon.wine, cdaemon.ini if what == "file" else cdaemon.dir)
    assert named in err and "writable by Everyone" in err, err
    assert "whatever strict_modes says" in err, err
    assert not cdaemon.wine.probe(cdaemon.pipe), "the pipe was created"


def test_check_config_refuses_a_config_everyone_may_write(cdaemon):
    cdaemon.write_ini()
    wine = cdaemon.wine
    ini = cpath(wine, cdaemon.ini)
    r = wine.run(wine.exe("pipefiled.exe"), "--check-config", "-c", ini)
    assert r.returncode == 0, text(r)
    os.chmod(cdaemon.ini, 0o666)
    r = wine.run(wine.exe("pipefiled.exe"), "--check-config", "-c", ini)
    assert r.returncode == 78 and "writable by Everyone" in text(r), text(r)


# ------------------------------------------------------------- install

@pytest.mark.parametrize("bad", ["folder", "files", "logs", "ini"])
def test_install_refuses_an_untrusted_programdata(wine, programdata, program, bad):
    programdata.mkdir(mode=0o755)
    target = programdata
    if bad in ("files", "logs"):
        target = programdata / bad
        target.mkdir()
    elif bad == "ini":
        target = programdata / "pipefiled.ini"
        target.write_text("[server]\nstrict_modes = no\n")
    os.chmod(target, 0o666 if bad == "ini" else 0o777)
    r = wine.run(program, "install", timeout=60)
    out = text(r)
    assert r.returncode == 1, out
    assert cpath(wine, target) in out and "writable by Everyone" in out, out
    assert "remove it or fix its permissions" in out, out
    assert not registered(wine), "the service was created:\n" + out
    if bad == "ini":
        assert target.read_text() == "[server]\nstrict_modes = no\n"


def test_install_refuses_a_program_in_a_folder_others_may_write(wine, programdata, cdir):
    exe = cdir / "pipefiled.exe"
    shutil.copy2(wine.exe("pipefiled.exe"), exe)
    os.chmod(cdir, 0o777)
    r = wine.run(exe, "install", timeout=60)
    out = text(r)
    assert r.returncode == 1, out
    assert cpath(wine, cdir) in out and "%ProgramFiles%" in out, out
    assert not registered(wine), out
    assert not programdata.exists(), "install made ProgramData\\pipefiled before refusing"


@pytest.mark.pf_timeout(180)
def test_service_installed_from_trusted_folders(wine, programdata, program):
    """install with no options (account NT SERVICE\\pipefiled), net start,
    net stop; then a config made writable by Everyone: the service refuses
    to start (78); reinstall over the folders an earlier install made."""
    r = wine.run(program, "install", timeout=60)
    out = text(r)
    assert r.returncode == 0, out
    assert "NT SERVICE\\pipefiled" in out, out
    sid = re.search(r"granted to (S-1-5-80-[0-9-]+)", out)
    assert sid, out
    r = wine.run("net", "start", NAME, timeout=60)
    assert r.returncode == 0, text(r)
    conftest.wait_for(lambda: wine.probe("\\\\.\\pipe\\pipefiled", 200), 30, "the service's pipe")
    r = wine.run("net", "stop", NAME, timeout=60)
    assert r.returncode == 0, text(r)

    os.chmod(programdata / "pipefiled.ini", 0o666)
    wine.run("net", "start", NAME, timeout=60)
    conftest.wait_for(lambda: b"STOPPED" in wine.run("sc", "query", NAME).stdout, 30,
                      "the service to stop")
    q = wine.run("sc", "query", NAME).stdout
    assert re.search(rb"SERVICE_EXIT_CODE\s*:\s*78\b", q), q
    os.chmod(programdata / "pipefiled.ini", 0o644)

    r = wine.run(program, "uninstall", timeout=60)
    assert r.returncode == 0, text(r)
    r = wine.run(program, "install", timeout=60)
    out = text(r)
    assert r.returncode == 0, out
    assert "exists: kept" in out, out

"""The config on Windows: --check-config on good and bad files (exit 0 /
78, FILE:LINE messages), Linux-only keys refused as such, Windows keys
accepted, and a daemon refusing to start on a bad config."""

import os
import shutil
import tempfile

import pytest

from conftest import winpath


def check(d):
    d.write_ini()
    return d.wine.run(d.wine.exe("pipefiled.exe"), "--check-config", "-c", winpath(d.ini),
                      timeout=30)


def test_check_config_good(daemon):
    r = check(daemon)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode(errors="replace").replace("\r\n", "\n")
    assert "[server]" in out
    assert "socket = %s\n" % daemon.pipe in out, out
    assert "root = %s\n" % winpath(daemon.root) in out, out
    # Windows' own keys are printed with their defaults; Linux's are not
    assert "pipe_sddl = " in out and "remote_clients = no" in out, out
    assert "socket_mode" not in out and "socket_group" not in out, out


def test_check_config_windows_keys(daemon):
    daemon.set("server", "pipe_sddl", "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU)")
    daemon.set("server", "remote_clients", "yes")
    r = check(daemon)
    assert r.returncode == 0, r.stderr
    assert b"remote_clients = yes" in r.stdout


def bad(daemon, text):
    daemon.ini_text = text
    r = check(daemon)
    return r.returncode, r.stderr.decode(errors="replace")


def test_check_config_bad_value(daemon):
    rc, err = bad(daemon, "[server]\nsocket = %s\nworkers = 0\n" % daemon.pipe)
    assert rc == 78, err
    assert "pipefiled.ini:3: [server] workers:" in err, err


def test_check_config_unknown_key(daemon):
    rc, err = bad(daemon, "; comment\n[server]\nsocket = %s\nfrobnicate = 1\n" % daemon.pipe)
    assert rc == 78, err
    assert "pipefiled.ini:4:" in err and "unknown key" in err, err


@pytest.mark.parametrize("key,value", [("socket_mode", "0666"), ("socket_group", "staff")])
def test_linux_key_refused(daemon, key, value):
    rc, err = bad(daemon, "[server]\nsocket = %s\n%s = %s\n" % (daemon.pipe, key, value))
    assert rc == 78, err
    assert "pipefiled.ini:3: [server] %s:" % key in err, err
    assert "a Linux setting" in err, err


def test_missing_config_file(daemon, workdir):
    r = daemon.wine.run(daemon.wine.exe("pipefiled.exe"), "--check-config", "-c",
                        winpath(workdir / "nope.ini"), timeout=30)
    assert r.returncode == 78, r.stderr
    assert b"nope.ini" in r.stderr


def test_daemon_refuses_bad_config(daemon):
    daemon.ini_text = "[server]\nsocket = %s\nworkers = lots\n" % daemon.pipe
    daemon.expect_exit = True
    daemon.start(wait=False)
    rc = daemon.wait_exit(30)
    assert rc == 78, (rc, daemon.stderr())
    assert "pipefiled.ini:3: [server] workers:" in daemon.stderr()
    assert not daemon.wine.probe(daemon.pipe)


@pytest.mark.parametrize("sock", ["Z:\\tmp\\pf.sock", "\\\\.\\pipe\\", "pipefiled"])
def test_bad_pipe_name_refused(daemon, sock):
    daemon.set("server", "socket", sock)
    daemon.expect_exit = True
    daemon.start(wait=False)
    rc = daemon.wait_exit(30)
    assert rc not in (None, 0), daemon.stderr()
    assert "ready:" not in daemon.stderr()
    assert "pipe" in daemon.stderr().lower(), daemon.stderr()


def test_usage_error(wine):
    r = wine.run(wine.exe("pipefiled.exe"), "--no-such-option", timeout=30)
    assert r.returncode == 64, r.stderr
    r = wine.run(wine.exe("pipefiled.exe"), "--help", timeout=30)
    assert r.returncode == 0 and b"install" in r.stdout


def test_strict_modes_default_serves_from_a_safe_folder(daemon):
    """strict_modes = yes (the default), everything on drive C: (a chain
    only the session's user may change): no warning, served."""
    daemon.unset("server", "strict_modes")
    daemon.start()
    daemon.put("a.txt", b"a\n")
    assert daemon.get("/a.txt").body == b"a\n"
    assert "warning" not in daemon.stderr(), daemon.stderr()


def test_strict_modes_refuses_log_dir_open_to_everyone(daemon):
    """A log under /tmp (wine: Everyone may delete and rename in it, as
    Windows has no sticky bit) could be swapped: refused."""
    daemon.unset("server", "strict_modes")
    logdir = tempfile.mkdtemp(prefix="pf-win-log-", dir="/tmp")
    try:
        daemon.set("log", "access_log", winpath(os.path.join(logdir, "access.log")))
        daemon.expect_exit = True
        daemon.start(wait=False)
        rc = daemon.wait_exit(30)
        assert rc not in (None, 0), daemon.stderr()
        err = daemon.stderr()
        assert "access_log" in err and "Everyone" in err and "strict_modes = no" in err, err
        assert not daemon.wine.probe(daemon.pipe)
        # strict_modes = no: said, not refused
        daemon.set("server", "strict_modes", "no")
        daemon.expect_exit = False
        daemon.start()
        assert "Everyone" in daemon.stderr()[daemon.err_offset:]
    finally:
        daemon.stop()
        shutil.rmtree(logdir, ignore_errors=True)

"""pipefiled.exe as a Windows service under wine's service control manager:
install, net start, a client fetch, net stop (clean: the access log has the
request, the Event Log says it stopped), uninstall.

Under wine the Event Log is wine's ReportEventW, which writes each record to
the eventlog debug channel: the session's services.log (conftest.py). Wine
runs every service as the session's user whatever the account, so the
account and its privileges are not tested here."""

import os
import re
import subprocess

import pytest

import pfp
from conftest import procs_mentioning, procs_of_prefix, sha256, token_of, wait_for, winpath

NAME = "pipefiled"


def net(wine, *args, timeout=60):
    return wine.run("net", *args, timeout=timeout)


def service_exists(wine):
    r = wine.run("sc", "query", NAME, timeout=30)
    return r.returncode == 0


def service_state(wine):
    """RUNNING, STOPPED, ... as `sc query` says; None when not installed."""
    r = wine.run("sc", "query", NAME, timeout=30)
    if r.returncode != 0:
        return None
    m = re.search(rb"STATE\s*:\s*\d+\s+(\w+)", r.stdout)
    return m.group(1).decode() if m else "?"


@pytest.mark.pf_timeout(180)
def test_service_lifecycle(daemon, workdir):
    wine = daemon.wine
    daemon.put("hello.txt", b"hello from the service\n")
    # A service has no stderr: its messages go to the Event Log
    daemon.set("log", "error_log", "syslog")
    daemon.write_ini()
    exe = wine.exe("pipefiled.exe")
    events_from = wine.services_log_size()
    installed = False
    try:
        r = wine.run(exe, "install", "--config", winpath(daemon.ini), timeout=60)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        installed = True
        assert service_exists(wine), "install did not register the service"

        r = net(wine, "start", NAME)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr, wine.services_log_text(events_from))
        wait_for(lambda: wine.probe(daemon.pipe, 200), 30, "the service's pipe")
        assert service_state(wine) == "RUNNING"

        r = daemon.cli("get", "/hello.txt")
        assert (r.returncode, r.stdout) == (0, b"hello from the service\n"), r.stderr
        with daemon.conn() as c:
            assert c.stat("/hello.txt").size == len(b"hello from the service\n")
        # the service is the one process serving it
        assert procs_mentioning(token_of(workdir)), "no service process mentions the config"

        r = net(wine, "stop", NAME)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr, wine.services_log_text(events_from))
        assert not wine.probe(daemon.pipe), "the pipe outlived the stopped service"
        assert service_state(wine) == "STOPPED"
        # the service process is gone once STOPPED was reported
        wait_for(lambda: not procs_mentioning(token_of(workdir)), 15,
                 "the service process to exit")

        # a clean stop: every request is in the access log, complete lines
        lines = daemon.log_lines()
        assert len(lines) == 2, lines
        assert all(b"proto=pfp1" in l for l in lines), lines
        assert b"op=GET" in lines[0] and b"status=OK" in lines[0], lines
        # and the Event Log (wine: services.log) recorded start and stop,
        # with no error
        events = wine.services_log_text(events_from)
        assert "ReportEvent" in events, "no Event Log record at all:\n" + events
        low = events.lower()
        assert "ready" in low or "start" in low, events
        assert "stopped" in low or "stopping" in low, events
        assert ":err:eventlog:" not in events, events
    finally:
        if installed:
            net(wine, "stop", NAME)
            r = wine.run(exe, "uninstall", timeout=60)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert not service_exists(wine), "uninstall left the service registered"
    assert net(wine, "start", NAME).returncode != 0
    # config and logs stay
    assert daemon.ini.exists() and daemon.access_log.exists()


def test_uninstall_when_not_installed(wine):
    r = wine.run(wine.exe("pipefiled.exe"), "uninstall", timeout=60)
    assert b"not installed" in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr)


@pytest.mark.pf_timeout(120)
def test_service_refuses_stderr_error_log(daemon):
    """error_log = stderr under the SCM: the service does not run, and the
    Event Log says why."""
    wine = daemon.wine
    daemon.set("log", "error_log", "stderr")
    daemon.write_ini()
    exe = wine.exe("pipefiled.exe")
    events_from = wine.services_log_size()
    r = wine.run(exe, "install", "--config", winpath(daemon.ini), timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    try:
        net(wine, "start", NAME)  # wine's net says "started" once the process is
        wait_for(lambda: service_state(wine) == "STOPPED", 30, "the service to stop")
        assert not wine.probe(daemon.pipe)
        events = wine.services_log_text(events_from)
        assert "error_log = stderr" in events and ":err:eventlog:" in events, events
    finally:
        net(wine, "stop", NAME)
        r = wine.run(exe, "uninstall", timeout=60)
        assert r.returncode == 0, (r.stdout, r.stderr)


def test_service_main_without_scm(wine):
    """Started by hand without --console: not under the SCM, so it must say
    how to run it rather than hang or serve."""
    r = wine.run(wine.exe("pipefiled.exe"), timeout=20)
    assert r.returncode != 0
    assert b"--console" in r.stderr or b"service" in r.stderr.lower(), r.stderr


@pytest.fixture
def service(daemon):
    """pipefiled installed as the service on the test daemon's config and
    started; stopped and uninstalled afterwards (uninstall checked)."""
    wine = daemon.wine
    daemon.set("log", "error_log", "syslog")
    daemon.write_ini()
    exe = wine.exe("pipefiled.exe")
    daemon.events_from = wine.services_log_size()
    r = wine.run(exe, "install", "--config", winpath(daemon.ini), timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    try:
        r = net(wine, "start", NAME)
        assert r.returncode == 0, (r.stdout, r.stderr)
        wait_for(lambda: wine.probe(daemon.pipe, 200), 30, "the service's pipe")
        yield daemon
    finally:
        net(wine, "stop", NAME)
        r = wine.run(exe, "uninstall", timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert service_state(wine) is None


def control(wine, what):
    r = wine.run(wine.exe("svcctl.exe"), NAME, what, timeout=30)
    assert r.returncode == 0, (what, r.stdout, r.stderr)


def events(d):
    return d.wine.services_log_text(d.events_from)


@pytest.mark.pf_timeout(120)
def test_service_reload_paramchange(service):
    """sc control pipefiled paramchange reloads the config: a new root is
    served from then on."""
    service.put("old.txt", b"old root\n")
    assert service.get("/old.txt").body == b"old root\n"
    new_root = service.dir / "root2"
    new_root.mkdir()
    (new_root / "new.txt").write_bytes(b"new root\n")
    service.set("server", "root", winpath(new_root))
    service.write_ini()
    control(service.wine, "paramchange")
    wait_for(lambda: "reloaded" in events(service), 15,
             "the reload in the Event Log:\n" + events(service))
    r = service.get("/new.txt")
    assert (r.name, r.body) == ("OK", b"new root\n"), r
    assert service.get("/old.txt").name == "ENOENT"


@pytest.mark.pf_timeout(120)
def test_service_reload_bad_config_keeps_running(service):
    service.put("a.txt", b"a\n")
    service.ini_text = "[server]\nsocket = %s\nworkers = none\n" % service.pipe
    service.write_ini()
    control(service.wine, "paramchange")
    wait_for(lambda: any(":err:eventlog:" in l and "workers" in l
                         for l in events(service).splitlines()), 15,
             "the refused reload (an error naming workers) in the Event Log")
    assert service.get("/a.txt").body == b"a\n"  # serving on, as before
    assert service_state(service.wine) == "RUNNING"


@pytest.mark.pf_timeout(120)
def test_service_reopen_access_log(service):
    """Control 128 reopens the access log: a log rotated by renaming it
    gets a new file for the requests that follow."""
    service.put("a.txt", b"a\n")
    assert service.get("/a.txt").name == "OK"
    wait_for(lambda: len(service.log_lines()) == 1, 10, "the first line")
    rotated = service.dir / "access.log.1"
    os.rename(service.access_log, rotated)
    control(service.wine, "128")
    # the reopen is asynchronous: requests until the new file appears
    wait_for(lambda: service.get("/a.txt").name == "OK" and service.log_lines(),
             15, "a line in a new access.log")
    old = rotated.read_bytes().splitlines()
    new = service.log_lines()
    assert len(old) >= 1 and len(new) >= 1, (old, new)
    assert all(b"proto=pfp1" in l for l in old + new)


@pytest.mark.pf_timeout(150)
def test_service_stop_finishes_transfer(service):
    """net stop during a transfer: the body in flight is finished, then the
    service reports STOPPED."""
    data = os.urandom(16 << 20)
    service.put("big.bin", data)
    wine = service.wine
    with service.conn(timeout=60) as c:
        c.send(pfp.get_request("/big.bin"))
        r = c.read_header()
        assert r.name == "OK"
        head = c.read_body(r, keep=True, limit=1 << 20).body
        stopper = wine.popen("net", "stop", NAME, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        wait_for(lambda: "stopping" in events(service), 15, "the stop to begin")
        rest = c.read_body(pfp.Response(0, 0, 0, r.size, 0, r.body_len - len(head)), keep=True)
        assert sha256(head + rest.body) == sha256(data), "the transfer in flight was cut"
        assert c.closed_by_peer(15)
    assert stopper.wait(timeout=60) == 0, stopper.stderr.read()
    wait_for(lambda: service_state(wine) == "STOPPED", 30, "STOPPED")
    assert "stopped" in events(service)
    lines = service.log_lines()
    assert any(b"status=OK" in l and b"bytes=%d" % len(data) in l for l in lines), lines


def prefix_daemons(wine):
    """pipefiled.exe processes of this session's prefix."""
    out = []
    for pid in procs_of_prefix(wine.prefix):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if b"pipefiled.exe" in f.read().lower():
                    out.append(pid)
        except OSError:
            pass
    return out


@pytest.mark.pf_timeout(180)
def test_service_out_of_the_box(wine):
    """`pipefiled install` with no options: it writes
    %ProgramData%\\pipefiled\\pipefiled.ini (logs to the Event Log and
    ProgramData\\pipefiled\\logs), the service starts on \\\\.\\pipe\\pipefiled
    and serves ProgramData\\pipefiled\\files to pipefile.exe with no -s."""
    exe = wine.exe("pipefiled.exe")
    data = wine.prefix / "drive_c" / "ProgramData" / "pipefiled"
    ini = data / "pipefiled.ini"
    assert not ini.exists()
    events_from = wine.services_log_size()
    r = wine.run(exe, "install", timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    try:
        assert ini.exists(), r.stdout
        r = wine.run(exe, "--check-config", "-c", "C:\\ProgramData\\pipefiled\\pipefiled.ini")
        assert r.returncode == 0, r.stderr
        out = r.stdout.decode(errors="replace")
        assert "error_log = syslog" in out and "access_log = C:\\ProgramData\\pipefiled\\logs\\" in out, out
        (data / "files" / "hello.txt").write_bytes(b"out of the box\n")
        r = net(wine, "start", NAME)
        assert r.returncode == 0, (r.stdout, r.stderr)
        wait_for(lambda: wine.probe("\\\\.\\pipe\\pipefiled", 200), 30,
                 "\\\\.\\pipe\\pipefiled:\n" + wine.services_log_text(events_from))
        assert service_state(wine) == "RUNNING"
        r = wine.run(wine.exe("pipefile.exe"), "get", "/hello.txt", timeout=60)
        assert (r.returncode, r.stdout) == (0, b"out of the box\n"), r.stderr
        r = net(wine, "stop", NAME)
        assert r.returncode == 0, (r.stdout, r.stderr)
        wait_for(lambda: not prefix_daemons(wine), 15, "the service process to exit")
        log = (data / "logs" / "access.log").read_bytes()
        assert log.count(b"\n") == 1 and b'path="/hello.txt"' in log and b"status=OK" in log, log
        assert "stopped" in wine.services_log_text(events_from)
    finally:
        net(wine, "stop", NAME)
        r = wine.run(exe, "uninstall", timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert service_state(wine) is None
    assert ini.exists(), "uninstall must leave the config"


def test_install_twice_refused(daemon):
    wine = daemon.wine
    daemon.set("log", "error_log", "syslog")
    daemon.write_ini()
    exe = wine.exe("pipefiled.exe")
    r = wine.run(exe, "install", "--config", winpath(daemon.ini), timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    try:
        r = wine.run(exe, "install", "--config", winpath(daemon.ini), timeout=60)
        assert r.returncode != 0
        assert b"uninstall" in r.stderr, r.stderr
        assert service_state(wine) == "STOPPED"  # the first one, untouched
    finally:
        r = wine.run(exe, "uninstall", timeout=60)
    assert r.returncode == 0

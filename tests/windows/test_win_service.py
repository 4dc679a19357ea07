"""pipefiled.exe as a Windows service under wine's service control manager:
install, net start, a client fetch, net stop (clean: the access log has the
request, the Event Log says it stopped), uninstall.

Under wine the Event Log is wine's ReportEventW, which writes each record to
the eventlog debug channel: the session's services.log (conftest.py). Wine
runs every service as the session's user whatever the account, so the
account and its privileges are not tested here."""

import re

import pytest

from conftest import procs_mentioning, token_of, wait_for, winpath

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

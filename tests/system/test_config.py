"""The config file: --check-config prints the effective config (a loadable
ini) and exits 0; every kind of bad config exits 78 (EX_CONFIG) with
"FILE:LINE: [section] key: reason", both for --check-config and at start-up,
and a bad config never leaves a socket behind."""

import configparser
import subprocess

import pytest

DAEMON = None  # the session's copy, set by _binary

ALL_KEYS = {
    "server": {"socket", "socket_mode", "socket_group", "root", "workers", "max_connections",
               "request_timeout", "idle_timeout", "send_timeout", "shutdown_timeout"},
    "identity": {"allow_users", "allow_groups", "deny_users", "deny_groups", "serve_root_clients"},
    "log": {"access_log", "access_format", "error_log", "level"},
}


@pytest.fixture(autouse=True)
def _binary(tools):
    global DAEMON
    DAEMON = tools / "pipefiled"


def run(args, timeout=15):
    return subprocess.run([str(DAEMON)] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)


def parse_ini(text):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    cp.read_string(text)
    return cp


def test_check_config_prints_effective_config(workdir):
    ini = workdir / "a.ini"
    ini.write_text(
        "; a comment\n# another\n\n[server]\nsocket = %s/x.sock\nroot = %s\nworkers = 3\n"
        "socket_mode = 0640\nrequest_timeout = 250ms\nidle_timeout = 2m\nsend_timeout = 7\n"
        "[identity]\ndeny_users = 61002, 61003\nserve_root_clients = yes\n"
        "[log]\naccess_format = json\nlevel = debug\n" % (workdir, workdir))
    p = run(["-c", ini, "--check-config"])
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    cp = parse_ini(out)
    for sec, keys in ALL_KEYS.items():
        assert sec in cp, out
        assert keys <= set(cp[sec]), (sec, keys - set(cp[sec]))
    assert cp["server"]["socket"] == "%s/x.sock" % workdir
    assert cp["server"]["root"] == str(workdir)
    assert cp["server"]["workers"] == "3"
    assert int(cp["server"]["socket_mode"], 8) == 0o640
    assert cp["server"]["max_connections"] == "4096"  # default filled in
    assert [u.strip() for u in cp["identity"]["deny_users"].split(",")] == ["61002", "61003"]
    assert cp["identity"]["serve_root_clients"] in ("yes", "true", "on", "1")
    assert cp["log"]["access_format"] == "json"
    assert cp["log"]["level"] == "debug"
    # the output is loadable and reproduces itself
    again = workdir / "again.ini"
    again.write_text(out)
    p2 = run(["-c", again, "--check-config"])
    assert p2.returncode == 0, p2.stderr
    assert p2.stdout.decode().splitlines()[1:] == out.splitlines()[1:]
    # durations printed in any unit, but the same durations
    assert p.stdout.count(b"\n") > 20


def test_check_config_does_not_start(workdir):
    ini = workdir / "a.ini"
    ini.write_text("[server]\nsocket = %s/x.sock\nroot = %s\n" % (workdir, workdir))
    p = run(["-c", ini, "--check-config"])
    assert p.returncode == 0, p.stderr
    assert not (workdir / "x.sock").exists()


# (name, ini text, line, expected substring after "FILE:LINE: ")
BAD = [
    ("unknown_key", "[server]\nworkers = 2\nbogus = 1\n", 3, "[server] bogus"),
    ("unknown_section", "[nope]\nx = 1\n", 1, "[nope]: unknown section"),
    ("key_before_section", "workers = 2\n", 1, "workers"),
    ("duplicate_key", "[server]\nworkers = 2\nworkers = 3\n", 3, "[server] workers"),
    ("duplicate_key_across_sections", "[server]\nworkers = 2\n[log]\nlevel = info\n[server]\nworkers = 3\n",
     6, "[server] workers"),
    ("workers_0", "[server]\nworkers = 0\n", 2, "[server] workers"),
    ("workers_257", "[server]\nworkers = 257\n", 2, "[server] workers"),
    ("workers_text", "[server]\nworkers = four\n", 2, "[server] workers"),
    ("workers_trailing", "[server]\nworkers = 4x\n", 2, "[server] workers"),
    ("workers_negative", "[server]\nworkers = -1\n", 2, "[server] workers"),
    ("workers_empty", "[server]\nworkers =\n", 2, "[server] workers"),
    ("max_connections_0", "[server]\nmax_connections = 0\n", 2, "[server] max_connections"),
    ("max_connections_huge", "[server]\nmax_connections = 1000001\n", 2, "[server] max_connections"),
    ("socket_mode_not_octal", "[server]\nsocket_mode = 0999\n", 2, "[server] socket_mode"),
    ("socket_mode_too_big", "[server]\nsocket_mode = 01777\n", 2, "[server] socket_mode"),
    ("socket_relative", "[server]\nsocket = rel.sock\n", 2, "[server] socket"),
    ("socket_too_long", "[server]\nsocket = /tmp/%s.sock\n" % ("s" * 120), 2, "[server] socket"),
    ("root_relative", "[server]\nroot = srv\n", 2, "[server] root"),
    ("request_timeout_unit", "[server]\nrequest_timeout = 10x\n", 2, "[server] request_timeout"),
    ("request_timeout_zero", "[server]\nrequest_timeout = 0\n", 2, "[server] request_timeout"),
    ("idle_timeout_too_long", "[server]\nidle_timeout = 1441m\n", 2, "[server] idle_timeout"),
    ("send_timeout_negative", "[server]\nsend_timeout = -5s\n", 2, "[server] send_timeout"),
    ("shutdown_timeout_text", "[server]\nshutdown_timeout = soon\n", 2, "[server] shutdown_timeout"),
    ("socket_group_unknown", "[server]\nsocket_group = no_such_group_pf\n", 2, "[server] socket_group"),
    ("allow_users_unknown", "[identity]\nallow_users = no_such_user_pf\n", 2, "[identity] allow_users"),
    ("deny_users_unknown", "[identity]\ndeny_users = root, no_such_user_pf\n", 2, "[identity] deny_users"),
    ("allow_groups_unknown", "[identity]\nallow_groups = no_such_group_pf\n", 2, "[identity] allow_groups"),
    ("deny_groups_unknown", "[identity]\ndeny_groups = no_such_group_pf\n", 2, "[identity] deny_groups"),
    ("serve_root_clients_maybe", "[identity]\nserve_root_clients = maybe\n", 2,
     "[identity] serve_root_clients"),
    ("access_format_xml", "[log]\naccess_format = xml\n", 2, "[log] access_format"),
    ("access_log_relative", "[log]\naccess_log = logs/access.log\n", 2, "[log] access_log"),
    ("error_log_file", "[log]\nerror_log = /tmp/x.log\n", 2, "[log] error_log"),
    ("level_loud", "[log]\nlevel = loud\n", 2, "[log] level"),
    ("long_line", "[server]\nroot = /%s\n" % ("r" * 250), 2, ""),
    ("long_comment_line", "[server]\n; %s\nworkers = 2\n" % ("c" * 250), 2, ""),
]


@pytest.mark.parametrize("name,text,line,what", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("mode", ["check", "start"])
def test_bad_config_exit_78_with_file_line(workdir, name, text, line, what, mode):
    ini = workdir / "bad.ini"
    sock = workdir / "pf.sock"
    # a valid socket and root first (unless the case sets them), so only the
    # error under test can fail
    ini.write_text(text)
    args = ["-c", ini] + (["--check-config"] if mode == "check" else [])
    p = run(args)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 78, (p.returncode, err)
    assert "%s:%d: %s" % (ini, line, what) in err, err
    assert err.startswith("pipefiled: error: "), err
    # the error is one whole line, and the only one
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert p.stdout == b"" or mode == "start"
    assert not sock.exists()


@pytest.mark.parametrize("mode", ["check", "start"])
def test_every_error_reported_on_one_line(workdir, mode):
    """A file with several errors: the first one is reported, whole, on a
    line of its own, and nothing else is printed (parsing stops there, so no
    later error can read as a continuation of it). Each single-error case
    of BAD is held to exactly one line too (test_bad_config_exit_78_...)."""
    ini = workdir / "bad.ini"
    ini.write_text("[server]\nsocket = %s/pf.sock\nroot = %s\nworkers = 0\nbogus = 1\n"
                   "[log]\nlevel = loud\n" % (workdir, workdir))
    p = run(["-c", ini] + (["--check-config"] if mode == "check" else []))
    err = p.stderr.decode()
    assert p.returncode == 78, (p.returncode, err)
    assert err == "pipefiled: error: %s:4: [server] workers: must be a number from 1 to 256, or auto\n" \
        % ini, err
    assert p.stdout == b""
    assert not (workdir / "pf.sock").exists()


def test_missing_config_file(workdir):
    p = run(["-c", workdir / "nope.ini", "--check-config"])
    assert p.returncode != 0
    assert str(workdir / "nope.ini") in p.stderr.decode(), p.stderr


@pytest.mark.parametrize("value,ok", [
    ("10", True), ("250ms", True), ("10s", True), ("2m", True), ("1ms", True), ("1440m", True),
    ("86400s", True), ("0ms", False), ("1441m", False), ("86401", False), ("1.5s", False),
    ("10 s", False),  # a number and its unit are one word ("10s", pipefiled.ini(5))
    ("ms", False), ("", False), ("-1s", False),
])
def test_duration_forms(workdir, value, ok):
    ini = workdir / "d.ini"
    ini.write_text("[server]\nroot = %s\nrequest_timeout = %s\n" % (workdir, value))
    p = run(["-c", ini, "--check-config"])
    err = p.stderr.decode()
    if ok:
        assert p.returncode == 0, err
    else:
        assert p.returncode == 78, (p.returncode, p.stdout)
        assert err.startswith("pipefiled: error: %s:3: [server] request_timeout: " % ini), err
        assert err.count("\n") == 1, err


@pytest.mark.parametrize("value", ["yes", "no", "true", "false", "on", "off", "1", "0"])
def test_boolean_forms(workdir, value):
    ini = workdir / "b.ini"
    ini.write_text("[server]\nroot = %s\n[identity]\nserve_root_clients = %s\n" % (workdir, value))
    p = run(["-c", ini, "--check-config"])
    assert p.returncode == 0, p.stderr


def test_help_and_version():
    for arg in ("--help", "-h"):
        p = run([arg])
        assert p.returncode == 0 and b"--check-config" in p.stdout, p
    for arg in ("--version", "-V"):
        p = run([arg])
        assert p.returncode == 0 and p.stdout.startswith(b"pipefiled "), p


def test_unknown_option():
    p = run(["--frobnicate"])
    assert p.returncode != 0
    assert p.stderr, p


def test_shipped_example_config_is_valid(workdir):
    """config/pipefiled.ini documents every key with its default; it is valid
    wherever its root exists."""
    import re
    from conftest import REPO
    example = REPO / "config" / "pipefiled.ini"
    if not example.exists():
        pytest.fail("config/pipefiled.ini is missing")
    text = example.read_text()
    copy = workdir / "example.ini"
    copy.write_text(re.sub(r"(?m)^root\s*=.*$", "root = %s" % workdir, text))
    p = run(["-c", copy, "--check-config"])
    assert p.returncode == 0, p.stderr
    for sec, keys in ALL_KEYS.items():
        assert "[%s]" % sec in text
        for k in keys:
            assert k in text, "%s not documented in config/pipefiled.ini" % k


@pytest.mark.parametrize("kind,reason", [("missing", "No such file or directory"),
                                         ("file", "Not a directory")])
@pytest.mark.parametrize("mode", ["check", "start"])
def test_root_that_cannot_be_opened_is_a_config_error_at_its_line(workdir, kind, reason, mode):
    """A configured root that cannot be opened: exactly
    `FILE:LINE: [server] root: PATH: <strerror>` on one line, exit 78, no
    socket, nothing created at the root's path."""
    root = workdir / "srv" / "root"
    if kind == "file":
        root.parent.mkdir()
        root.write_text("not a dir\n")
    sock = workdir / "pf.sock"
    ini = workdir / "root.ini"
    ini.write_text("; a comment first\n[server]\nsocket = %s\n\nroot = %s\nworkers = 1\n"
                   % (sock, root))
    p = run(["-c", ini] + (["--check-config"] if mode == "check" else []))
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 78, (p.returncode, err)
    assert err == "pipefiled: error: %s:5: [server] root: %s: %s\n" % (ini, root, reason), err
    assert p.stdout == b""
    assert not sock.exists()
    if kind == "missing":
        assert not root.exists() and not root.parent.exists()
    else:
        assert root.read_text() == "not a dir\n"

"""The no-privilege mode: pipefiled run as a non-root uid with no
capabilities at all says so at start-up, serves a client with its own uid,
gid and groups, and answers every other client EPERM."""

import os

import pytest

from conftest import GID_SHARED, UID_A, UID_B, User, need_root

DAEMON_USER = User(UID_A, UID_A, ())


@pytest.fixture
def unpriv(daemon):
    need_root()
    # The daemon's own dir must be writable by it (socket, access log).
    os.chown(daemon.dir, UID_A, UID_A)
    daemon.put("mine", b"mine\n", mode=0o600, uid=UID_A, gid=UID_A)
    daemon.put("pub", b"public\n", mode=0o644)
    daemon.put("roots", b"root only\n", mode=0o600, uid=0, gid=0)
    daemon.set("identity", "serve_root_clients", "yes")  # cannot help a root client here
    daemon.start(user=DAEMON_USER)
    return daemon


def test_runs_without_caps(unpriv):
    status = open("/proc/%d/status" % unpriv.proc.pid).read()
    fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
    assert fields["Uid"].split() == [str(UID_A)] * 4
    assert int(fields["CapEff"].strip(), 16) == 0
    assert int(fields["CapPrm"].strip(), 16) == 0
    line = [l for l in unpriv.stderr().splitlines() if "ready:" in l][0]
    assert "unprivileged: serving only uid %d" % UID_A in line, line
    assert os.lstat(unpriv.sock).st_uid == UID_A


def test_serves_its_own_uid(unpriv, runner):
    res = runner.pfp(DAEMON_USER, unpriv.sock, "get", "mine", "pub", "roots", "missing")
    assert [r["name"] for r in res] == ["OK", "OK", "EACCES", "ENOENT"], res
    assert res[0]["received"] == 5
    assert runner.pfp(DAEMON_USER, unpriv.sock, "stat", "mine")[0]["size"] == 5


@pytest.mark.parametrize("who", ["other_uid", "same_uid_other_gid", "other_uid_same_gid", "root"])
def test_other_clients_get_eperm(unpriv, runner, who):
    if who == "root":
        with unpriv.conn() as c:
            for path in ("pub", "mine", "missing"):
                r = c.get(path)
                assert r.problems() == []
                assert (r.name, r.body) == ("EPERM", b""), path
                assert r.message.startswith("EPERM: ")
        return
    user = {"other_uid": User(UID_B, UID_B, ()),
            "same_uid_other_gid": User(UID_A, GID_SHARED, ()),
            "other_uid_same_gid": User(UID_B, UID_A, ())}[who]
    res = runner.pfp(user, unpriv.sock, "get", "pub", "mine", "missing")
    assert [r["name"] for r in res] == ["EPERM"] * 3, res
    assert all(r["message"].startswith("EPERM: ") for r in res)


def test_same_uid_with_extra_groups_is_served(unpriv, runner):
    """The daemon has no supplementary groups; a client with some has all
    of the daemon's, so it may be served."""
    res = runner.pfp(User(UID_A, UID_A, (GID_SHARED,)), unpriv.sock, "get", "mine")
    assert res[0]["name"] == "OK", res


def test_access_log_and_cli(unpriv, runner):
    p = runner.cli(DAEMON_USER, "-s", unpriv.sock, "get", "mine")
    assert (p.returncode, p.stdout) == (0, b"mine\n"), p.stderr
    p = runner.cli(User(UID_B, UID_B, ()), "-s", unpriv.sock, "get", "pub")
    assert p.returncode == 18, p.stderr
    assert unpriv.stop() == 0
    lines = unpriv.log_lines()
    assert len(lines) == 2
    assert b"uid=%d" % UID_A in lines[0] and b"status=OK" in lines[0]
    assert b"uid=%d" % UID_B in lines[1] and b"status=EPERM" in lines[1]


GID_EXTRA = 61101  # a second supplementary group of the daemon's
GROUPED_DAEMON = User(UID_A, UID_A, (GID_SHARED, GID_EXTRA))


@pytest.fixture
def unpriv_grouped(daemon):
    """The daemon as UID_A with two supplementary groups and no
    capabilities; "grp" is readable through GID_EXTRA only."""
    need_root()
    os.chown(daemon.dir, UID_A, UID_A)
    daemon.put("mine", b"mine\n", mode=0o600, uid=UID_A, gid=UID_A)
    daemon.put("grp", b"group only\n", mode=0o640, uid=0, gid=GID_EXTRA)
    daemon.set("identity", "serve_root_clients", "yes")
    daemon.start(user=GROUPED_DAEMON)
    status = open("/proc/%d/status" % daemon.proc.pid).read()
    groups = [l.split(":", 1)[1].split() for l in status.splitlines() if l.startswith("Groups:")]
    assert sorted(int(g) for g in groups[0]) == [GID_SHARED, GID_EXTRA], groups
    return daemon


@pytest.mark.parametrize("groups", [(GID_SHARED,), (GID_EXTRA,), ()],
                         ids=["lacks_extra", "lacks_shared", "no_groups"])
def test_client_lacking_a_daemon_group_gets_eperm(unpriv_grouped, runner, groups):
    """Same uid and gid as the daemon, but without one of its groups: served
    as the daemon, it could read "grp" through a group it does not hold."""
    res = runner.pfp(User(UID_A, UID_A, groups), unpriv_grouped.sock, "get", "grp", "mine")
    assert [r["name"] for r in res] == ["EPERM", "EPERM"], res
    assert all(r["received"] == 0 for r in res), res


@pytest.mark.parametrize("groups", [(GID_SHARED, GID_EXTRA), (GID_EXTRA, 61102, GID_SHARED)],
                         ids=["same_groups", "more_groups_other_order"])
def test_client_with_all_daemon_groups_is_served(unpriv_grouped, runner, groups):
    res = runner.pfp(User(UID_A, UID_A, groups), unpriv_grouped.sock, "get", "grp", "mine")
    assert [(r["name"], r["received"]) for r in res] == [("OK", 11), ("OK", 5)], res

"""The mode with ambient capabilities: pipefiled run as a non-root uid that
holds only CAP_SETUID and CAP_SETGID (as ambient capabilities, the way a
service manager grants them) switches identity per request like a root
daemon: a 0600 file is served to its owner (another uid), a third uid gets
EACCES, supplementary groups count, and the worker threads hold nothing but
setuid/setgid -- never a capability that would let a client read more than
its own permissions allow. Root only (to set the daemon up)."""

import hashlib
import json
import os
import shlex

import pytest

from conftest import (GID_SHARED, SETPRIV, UID_A, UID_C, USER_A, USER_B, User, need_root, same_file,
                      parse_log_line)

DAEMON_USER = User(UID_C, UID_C, ())
CAP_SETGID, CAP_SETUID = 6, 7
SWITCH = (1 << CAP_SETUID) | (1 << CAP_SETGID)


def status_fields(path):
    with open(path) as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)


def threads(pid):
    """{thread name: /proc status fields} of every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            st = status_fields("/proc/%d/task/%s/status" % (pid, tid))
        except FileNotFoundError:
            continue
        out.setdefault(st["Name"], []).append(st)
    return out


@pytest.fixture
def ambient(daemon, workdir):
    need_root()
    d = daemon
    os.chown(d.dir, UID_C, UID_C)  # the socket and the access log are made as uid C
    d.put("a600", b"A's secret\n", mode=0o600, uid=UID_A, gid=UID_A)
    d.put("c600", b"the daemon's own\n", mode=0o600, uid=UID_C, gid=UID_C)
    d.put("g640", b"for the group\n", mode=0o640, uid=UID_A, gid=GID_SHARED)
    d.put("r600", b"root's\n", mode=0o600, uid=0, gid=0)
    d.put("pub", b"public\n", mode=0o644)
    d.set("server", "workers", "2")
    d.set("identity", "serve_root_clients", "yes")
    # exec all the way down: the fixture's pid is the daemon's
    wrapper = workdir / "with-ambient-caps"
    wrapper.write_text("#!/bin/sh\nexec %s --reuid %d --regid %d --clear-groups "
                       "--inh-caps +setuid,+setgid --ambient-caps +setuid,+setgid -- %s \"$@\"\n"
                       % (shlex.quote(SETPRIV), UID_C, UID_C,
                          shlex.quote(str(d.binary))))
    os.chmod(wrapper, 0o755)
    real = d.binary
    d.binary = wrapper
    d.start()
    assert same_file("/proc/%d/exe" % d.proc.pid, real)
    return d


def test_ambient_caps_switch_identity_per_request(ambient, runner):
    d = ambient
    pid = d.proc.pid
    err = d.stderr()
    ready = [l for l in err.splitlines() if "ready:" in l]
    assert len(ready) == 1 and "(switching identity per request" in ready[0], err
    assert "unprivileged" not in err, err
    assert "warning" not in err, err
    main = status_fields("/proc/%d/status" % pid)
    assert main["Uid"].split() == [str(UID_C)] * 4, main["Uid"]
    assert main["Gid"].split() == [str(UID_C)] * 4, main["Gid"]
    assert int(main["CapEff"], 16) & ~SWITCH == 0, main["CapEff"]
    assert os.lstat(d.sock).st_uid == UID_C

    # the owner, another uid than the daemon's, gets its 0600 file
    res = runner.pfp(USER_A, d.sock, "get", "a600", "g640", "pub", "c600")
    assert [r["name"] for r in res] == ["OK", "OK", "OK", "EACCES"], res
    assert res[0]["received"] == len(b"A's secret\n")
    # a third uid: EACCES for the 0600 file, its supplementary group opens g640
    res = runner.pfp(USER_B, d.sock, "get", "a600", "g640", "pub", "c600")
    assert [r["name"] for r in res] == ["EACCES", "OK", "OK", "EACCES"], res
    assert all(r["problems"] == [] for r in res), res
    assert res[0]["message"].startswith("EACCES: ")
    # the daemon's own uid, as a client: its own file, not A's
    res = runner.pfp(DAEMON_USER, d.sock, "get", "c600", "a600", "g640")
    assert [r["name"] for r in res] == ["OK", "EACCES", "EACCES"], res
    # a root client is served as uid 0, but the daemon has no CAP_DAC_OVERRIDE
    # to lend it: only what the mode bits give uid 0
    with d.conn() as c:
        assert c.get("r600").body == b"root's\n"
        assert c.get("a600").name == "EACCES"

    # every thread keeps the daemon's real, effective and saved ids; the
    # workers hold only setuid/setgid (effective and permitted), nothing
    # inheritable or ambient. A worker may still hold the file-system ids
    # and groups of the last client it served (identity_release, see
    # docs/design.md): those of one of the clients above, nobody else's.
    served = {UID_C, UID_A, USER_B.uid, DAEMON_USER.uid, 0}
    ts = threads(pid)
    workers = sorted(n for n in ts if n.startswith("pf-worker-"))
    assert workers == ["pf-worker-1", "pf-worker-2"], sorted(ts)
    for name in workers:
        (st,) = ts[name]
        assert int(st["CapEff"], 16) == SWITCH, (name, st["CapEff"])
        assert int(st["CapPrm"], 16) == SWITCH, (name, st["CapPrm"])
        assert int(st["CapInh"], 16) == 0, (name, st["CapInh"])
        assert int(st["CapAmb"], 16) == 0, (name, st["CapAmb"])
        uids, gids = st["Uid"].split(), st["Gid"].split()
        assert uids[:3] == [str(UID_C)] * 3, (name, st["Uid"])
        assert gids[:3] == [str(UID_C)] * 3, (name, st["Gid"])
        assert int(uids[3]) in served, (name, st["Uid"])
        if int(uids[3]) == UID_C:
            assert gids[3] == str(UID_C), (name, st["Gid"])
            assert st["Groups"].strip() == "", (name, st["Groups"])
    for name, sts in ts.items():
        for st in sts:
            assert int(st["CapEff"], 16) & ~SWITCH == 0, (name, st["CapEff"])
            if not name.startswith("pf-worker-"):
                assert st["Uid"].split() == [str(UID_C)] * 4, (name, st["Uid"])

    assert d.stop() == 0
    recs = [parse_log_line(l, "text") for l in d.log_lines()]
    assert len(recs) == 4 + 4 + 3 + 2, recs
    got = sorted((r["uid"], r["path"], r["status"]) for r in recs)
    want = sorted([(UID_A, b"a600", "OK"), (UID_A, b"g640", "OK"), (UID_A, b"pub", "OK"),
                   (UID_A, b"c600", "EACCES"),
                   (USER_B.uid, b"a600", "EACCES"), (USER_B.uid, b"g640", "OK"),
                   (USER_B.uid, b"pub", "OK"), (USER_B.uid, b"c600", "EACCES"),
                   (UID_C, b"c600", "OK"), (UID_C, b"a600", "EACCES"), (UID_C, b"g640", "EACCES"),
                   (0, b"r600", "OK"), (0, b"a600", "EACCES")])
    assert got == want, got


def test_ambient_caps_worker_caps_while_serving(ambient, runner, workdir):
    """Sampled while requests of two uids run concurrently: no worker thread
    ever shows a capability beyond setuid/setgid."""
    d = ambient
    pid = d.proc.pid
    big = os.urandom(4 << 20)
    d.put("a_big", big, mode=0o600, uid=UID_A, gid=UID_A)
    d.put("b_big", big[::-1], mode=0o600, uid=USER_B.uid, gid=USER_B.gid)
    spec_a = json.dumps([{"path": "a_big", "status": "OK",
                          "sha256": hashlib.sha256(big).hexdigest()},
                         {"path": "b_big", "status": "EACCES"}])
    spec_b = json.dumps([{"path": "b_big", "status": "OK",
                          "sha256": hashlib.sha256(big[::-1]).hexdigest()},
                         {"path": "a_big", "status": "EACCES"}])
    pa = runner.popen_pfp(USER_A, d.sock, "load", "--spec", spec_a, "--conns", "4",
                          "--requests", "20")
    pb = runner.popen_pfp(USER_B, d.sock, "load", "--spec", spec_b, "--conns", "4",
                          "--requests", "20")
    samples = 0
    while pa.poll() is None or pb.poll() is None:
        for name, sts in threads(pid).items():
            for st in sts:
                eff = int(st["CapEff"], 16)
                assert eff & ~SWITCH == 0, (name, st["CapEff"])
                if name.startswith("pf-worker-"):
                    assert int(st["CapPrm"], 16) == SWITCH, (name, st["CapPrm"])
        samples += 1
        assert samples < 100000
    for p in (pa, pb):
        out, errout = p.communicate(timeout=30)
        assert p.returncode == 0, errout
        stats = json.loads(out)
        assert (stats["ok"], stats["mismatch"], stats["errors"]) == (80, 0, 0), stats
    assert samples > 0
    assert d.stop() == 0
    assert len(d.log_lines()) == 160

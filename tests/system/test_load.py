"""No cross-talk under load: two users, each fetching its own 0600 files over
many concurrent, pipelined connections (>= 64 in all), thousands of
requests; neither ever gets the other's bytes or an error, and asking for
the other's files is always EACCES. The access log has one line per request,
each with the right uid."""

import json
import os

import pytest

from conftest import UID_A, UID_B, USER_A, USER_B, need_root, parse_log_line, sha256

SIZES = [1, 100, 4096, 10000, 65536, 65537, 131072, 200000]
CONNS = 32          # per user: 64 concurrent connections in all
REQUESTS = 100      # per connection: 6400 requests in all
PIPELINE = 4


def make_files(d, user, prefix):
    entries = []
    for i, size in enumerate(SIZES):
        data = os.urandom(size)
        name = "%s/%s%d.bin" % (prefix, prefix, i)
        d.put(name, data, mode=0o600, uid=user.uid, gid=user.gid)
        entries.append({"path": name, "status": "OK", "sha256": sha256(data), "size": size})
    return entries


@pytest.mark.pf_timeout(300)
def test_no_cross_talk_under_load(daemon, runner, workdir):
    need_root()
    for prefix in ("a", "b"):
        daemon.mkdir(prefix, mode=0o755)
    mine_a = make_files(daemon, USER_A, "a")
    mine_b = make_files(daemon, USER_B, "b")
    daemon.set("server", "workers", "4")
    daemon.start()

    # Each user mostly asks for its own files and now and then for one of
    # the other's, which must be EACCES every time.
    def spec(mine, theirs):
        return mine * 3 + [{"path": e["path"], "status": "EACCES"} for e in theirs[:3]]

    spec_a = workdir / "spec_a.json"
    spec_b = workdir / "spec_b.json"
    spec_a.write_text(json.dumps(spec(mine_a, mine_b)))
    spec_b.write_text(json.dumps(spec(mine_b, mine_a)))
    os.chmod(spec_a, 0o644)
    os.chmod(spec_b, 0o644)

    args = ["load", "--conns", CONNS, "--requests", REQUESTS, "--pipeline", PIPELINE]
    pa = runner.popen_pfp(USER_A, daemon.sock, *args, "--spec", "@%s" % spec_a, "--seed", 1)
    pb = runner.popen_pfp(USER_B, daemon.sock, *args, "--spec", "@%s" % spec_b, "--seed", 2)
    outs = {}
    for who, p in (("A", pa), ("B", pb)):
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        outs[who] = json.loads(out.decode().strip().splitlines()[-1])
    for who, res in outs.items():
        assert res["requests"] == CONNS * REQUESTS
        assert (res["ok"], res["mismatch"], res["errors"]) == (CONNS * REQUESTS, 0, 0), \
            "%s: %r" % (who, res)

    assert daemon.stop() == 0
    lines = daemon.log_lines()
    assert len(lines) == 2 * CONNS * REQUESTS
    per_uid = {UID_A: 0, UID_B: 0}
    for line in lines:
        rec = parse_log_line(line, "text")
        owner = UID_A if rec["path"].startswith(b"a/") else UID_B
        assert rec["uid"] in per_uid, rec
        per_uid[rec["uid"]] += 1
        assert rec["gid"] == rec["uid"], rec
        if rec["uid"] == owner:
            assert (rec["status"], rec["bytes"]) == ("OK", rec["size"]), rec
        else:
            assert (rec["status"], rec["bytes"]) == ("EACCES", 0), rec
    assert per_uid == {UID_A: CONNS * REQUESTS, UID_B: CONNS * REQUESTS}

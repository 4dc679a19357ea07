#!/usr/bin/python3
"""scripts/mutate.py - mutation testing: does the suite notice a real bug?

Each entry of MUTATIONS breaks one security-relevant rule the way a real bug
would (a check dropped, a bound off by one, a switch skipped). For each:
the tree is copied to BUILD/mutate/<name> (the worktree itself is never
touched), the exact original snippet is replaced, the copy is built, and the
entry's tests run against that build, bounded by a timeout, at most two
mutations at a time. A mutation is

  CAUGHT       its tests fail (or hang past the timeout),
  NOT CAUGHT   its tests pass: the suite would let that bug ship,
  STALE        its snippet is not in the file exactly once (the code moved:
               point the entry at the new code, or the list would rot),
  ERROR        the mutant does not build, the tests could not run, or they
               fail on the unmutated tree too (a failure then proves nothing).

Before the mutants, each distinct test selection runs once against the
unmutated tree and must pass with nothing skipped: a skipped test catches
nothing, so a run as non-root, or without a tool a test needs, reports
ERROR instead of a false CAUGHT. Prints one line per mutation and
"caught N of M"; exits 0 only when every mutation is caught.

Usage: scripts/mutate.py [--build DIR] [--jobs N] [NAME...]
  NAME...  only these mutations (default: all)
Run as root (the identity tests switch to other uids): `make mutate`.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"  # Debian's, as the system tests use

# (name, rule broken, file, original snippet, replacement, tests, timeout s)
# tests: arguments for pytest, relative to the tree (files, ::ids, -k EXPR),
# or ["unit:NAME"] for the unit test tests/unit/NAME.c.
# Keep snippets short and exact: one or two lines that say what is broken,
# so that re-pointing an entry after a refactor is easy.
MUTATIONS = [
    ("groups-not-switched",
     "identity: the client's supplementary groups replace the daemon's",
     "daemon/identity_linux.c",
     "      set_groups_checked(id->ngroups, id->groups) != 0 ||\n",
     "",
     ["tests/system/test_identity.py"], 400),
    ("fsuid-not-switched",
     "identity: files are opened with the client's fsuid",
     "daemon/identity_linux.c",
     "      set_fsuid_checked(id->uid) != 0) {",
     "      set_fsuid_checked(self_uid) != 0) {",
     ["tests/system/test_identity.py"], 400),
    ("fsgid-not-switched",
     "identity: files are opened with the client's fsgid",
     "daemon/identity_linux.c",
     "  if (set_fsgid_checked(id->gid) != 0 ||",
     "  if (set_fsgid_checked(self_gid) != 0 ||",
     ["tests/system/test_identity.py"], 400),
    ("held-ignores-groups",
     "identity: a worker skips the switch only for exactly the credentials it holds",
     "daemon/identity_linux.c",
     "         held.gid == id->gid && held.ngroups == id->ngroups &&\n"
     "         (id->ngroups == 0 ||\n"
     "          memcmp(held.groups, id->groups, id->ngroups * sizeof(gid_t)) == 0);",
     "         held.gid == id->gid;",
     ["tests/system/test_held_identity.py", "tests/system/test_torture.py"], 400),
    ("kept-groups-any-peer",
     "identity: a worker lends no peer the groups it kept for another",
     "daemon/identity_linux.c",
     "  if (id->serial != 0 && kept->serial == id->serial) {",
     "  if (id->serial != 0 && kept->serial != 0) {",
     ["unit:test_identity", "tests/system/test_identity.py"], 400),
    ("settle-inside-window",
     "identity: a log line never returns a thread to the daemon mid-open",
     "daemon/identity_linux.c",
     "  if (!held.inside)\n    identity_leave();",
     "  identity_leave();",
     ["unit:test_identity"], 300),
    ("no-log-guard",
     "identity: a worker logs as the daemon, not as the client it holds",
     "daemon/identity_linux.c",
     "  log_set_guard(identity_settle);",
     "",
     ["unit:test_identity"], 300),
    ("no-settle-before-wait",
     "identity: an idle worker holds nobody's credentials",
     "daemon/worker.c",
     "  if (identity_holding())\n    uv_timer_start(",
     "  if (0 && identity_holding())\n    uv_timer_start(",
     ["tests/system/test_held_identity.py"], 300),
    ("big-buffers-uncapped",
     "bounds: at most 8 connections per worker pin send_buffer of kernel memory",
     "daemon/conn.c",
     "      cfg_of(c)->send_buffer > 0 && c->host->big_buffers < CONN_BIG_BUFFERS) {",
     "      cfg_of(c)->send_buffer > 0) {",
     ["tests/system/test_send_buffer.py"], 300),
    ("fsuid-not-read-back",
     "identity: every setfsuid is confirmed by reading it back",
     "daemon/identity_linux.c",
     "  return (uid_t)setfsuid((uid_t)-1) == uid ? 0 : -EPERM;",
     "  return 0;",
     ["tests/system/test_readback.py"], 300),
    ("covers-self-ignores-groups",
     "unprivileged mode: a client must hold at least the daemon's groups",
     "daemon/identity_linux.c",
     "    if (j == id->ngroups && self_groups[i] != id->gid)\n      return 0;",
     "    (void)j;",
     ["tests/system/test_unprivileged.py"], 300),
    ("covers-self-ignores-gid",
     "unprivileged mode: a client must have the daemon's gid",
     "daemon/identity_linux.c",
     "  if (id->uid != self_uid || id->gid != self_gid)",
     "  if (id->uid != self_uid)",
     ["tests/system/test_unprivileged.py"], 300),
    ("resolve-not-beneath",
     "confinement: openat2 with RESOLVE_BENEATH",
     "daemon/resolve_linux.c",
     "  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;",
     "  how.resolve = RESOLVE_NO_MAGICLINKS;",
     ["tests/system/test_status.py", "-k", "exdev or symlink"], 300),
    ("walk-dotdot-above-root",
     "confinement: the userspace walk (openat2's fallback) stops \"..\" at the root",
     "daemon/resolve_linux.c",
     "  if (w->top == 0)\n    return -EXDEV;",
     "  if (w->top == 0)\n    return 0;",
     ["unit:test_resolve"], 120),
    ("root-clients-served",
     "policy: root clients are refused unless serve_root_clients = yes",
     "daemon/policy.c",
     "  if (identity_is_root(id) && !c->serve_root_clients) {",
     "  if (identity_is_root(id) && !c->serve_root_clients && 0) {",
     ["tests/system/test_policy.py"], 300),
    ("deny-users-ignored",
     "policy: deny_users",
     "daemon/policy.c",
     "  if (identity_user_in(id, &c->deny_users)) {",
     "  if (0 && identity_user_in(id, &c->deny_users)) {",
     ["tests/system/test_policy.py"], 300),
    ("allow-groups-ignored",
     "policy: allow_groups",
     "daemon/policy.c",
     "  if (!identity_group_in(id, &c->allow_groups)) {",
     "  if (!identity_group_in(id, &c->allow_groups) && 0) {",
     ["tests/system/test_policy.py"], 300),
    ("deny-groups-primary-only",
     "policy: deny_groups sees supplementary groups",
     "daemon/identity_linux.c",
     "  return identity_group_in(id, l); /* no deny-only groups here */",
     "  return idlist_has(l, (unsigned)id->gid);",
     ["tests/system/test_policy.py"], 300),
    ("status-not-logged",
     "audit: every request read gets exactly one access-log line",
     "daemon/conn.c",
     "  if (c->resolved_len > 0) {\n"
     "    r.resolved = c->buf->resolved;\n    r.resolved_len = c->resolved_len;\n  }\n"
     "  put_line(c, &r);",
     "  if (c->resolved_len > 0) {\n"
     "    r.resolved = c->buf->resolved;\n    r.resolved_len = c->resolved_len;\n  }\n"
     "  if (r.status == PFP_ENOTREG) {\n    accesslog_cancel(&c->ticket);\n"
     "    return;\n  }\n"
     "  put_line(c, &r);",
     ["tests/system/test_accesslog.py", "-k", "one_line_per_request"], 300),
    ("body-length-off-by-one",
     "protocol: a ranged GET's body is exactly the bytes asked for",
     "common/proto.c",
     "  *body_len = length != 0 && length < avail ? length : avail;",
     "  *body_len = length != 0 && length < avail ? length + 1 : avail;",
     ["tests/system/test_range.py"], 300),
    ("pipelining-out-of-order",
     "protocol: pipelined requests are answered in the order sent",
     "daemon/conn.c",
     "    n = pfp_request_decode(c->buf ? c->buf->req : NULL, c->rlen, &c->req, &why);",
     # Swap the first two complete requests in the buffer before decoding.
     "    if (c->buf != NULL) {\n"
     "      struct pfp_request m1;\n"
     "      const char *mw;\n"
     "      int n1 = pfp_request_decode(c->buf->req, c->rlen, &m1, &mw);\n"
     "      int n2 = n1 > 0 ? pfp_request_decode(c->buf->req + n1, c->rlen - (size_t)n1, &m1, &mw) : 0;\n"
     "      if (n2 > 0) {\n"
     "        static _Thread_local uint8_t mt[2 * PFP_REQ_MAX];\n"
     "        memcpy(mt, c->buf->req + n1, (size_t)n2);\n"
     "        memcpy(mt + n2, c->buf->req, (size_t)n1);\n"
     "        memcpy(c->buf->req, mt, (size_t)(n1 + n2));\n"
     "      }\n"
     "    }\n"
     "    n = pfp_request_decode(c->buf ? c->buf->req : NULL, c->rlen, &c->req, &why);",
     ["tests/system/test_pipeline.py"], 300),
    ("per-user-limit-off-by-one",
     "limits: max_connections_per_user",
     "daemon/connlimit.c",
     "never serve uncounted */\n    goto out;\n  }\n  if (max_per_user > 0 && s->n >= max_per_user) {",
     "never serve uncounted */\n    goto out;\n  }\n  if (max_per_user > 0 && s->n > max_per_user) {",
     ["tests/system/test_per_user.py"], 400),
    ("request-size-unbounded",
     "protocol: a request's path is at most 4096 bytes",
     "common/proto.c",
     "  if (req->path_len > PFP_PATH_MAX) {\n    *why =",
     "  if (req->path_len > PFP_PATH_MAX + 1) {\n    *why =",
     ["tests/system/test_malformed.py"], 300),
    ("cli-output-in-place",
     "CLI: -o OUT appears only when complete (temporary file, then rename)",
     "client/cli_linux.c",
     "  fd = mkstemp(tmp_path);",
     "  fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);\n"
     "  snprintf(tmp_path, sizeof(tmp_path), \"%s\", out);",
     ["tests/system/test_disconnect.py", "-k", "cli_killed or cli_short_body"], 300),
    ("config-duration-loose",
     "config: a bad value is refused (exit 78), never half understood",
     "daemon/config.c",
     "  if (*p == '\\0' || strcmp(p, \"s\") == 0)",
     "  while (*p == ' ')\n    p++;\n  if (*p == '\\0' || strcmp(p, \"s\") == 0)",
     ["tests/system/test_config.py", "-k", "duration"], 120),
    ("cli-help-wrong-meaning",
     "CLI: --help pairs each exit code with its meaning",
     "client/pipefile.c",
     "         EX_USAGE, EX_UNAVAILABLE, EX_CANTCREAT,",
     "         EX_UNAVAILABLE, EX_USAGE, EX_CANTCREAT,",
     ["tests/system/test_cli.py", "-k", "help"], 120),
    ("costly-not-apart",
     "scheduling: a client in thousands of groups is kept off the others' workers",
     "daemon/listener.c",
     "      if (serves_costly != (costly != 0))\n"
     "        n += LISTENER_COSTLY_WEIGHT;\n",
     "",
     ["tests/system/test_fault_groups.py"], 180),
    ("costly-share-uncapped",
     "scheduling: clients in thousands of groups get at most half the workers",
     "daemon/listener.c",
     "    share_taken = marked >= cap;",
     "    share_taken = marked >= cap + l->nworkers;",
     ["tests/system/test_fault_groups.py", "-k", "half"], 120),
]

def log(msg):
    print(msg, flush=True)


def tree_files(src):
    """The tree's files as git sees them: tracked and untracked-but-not-
    ignored, so uncommitted edits are tested too (and build/ is not)."""
    out = subprocess.run(["git", "-C", str(src), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, capture_output=True).stdout
    return [f for f in out.decode().split("\0") if f and (src / f).is_file()]


def copy_tree(src, dst, files):
    if dst.exists():
        shutil.rmtree(dst)
    for f in files:
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / f, dst / f)  # keeps mtimes: make rebuilds only what changed


def make(tree, build, jobs, log_path, target="all"):
    with open(log_path, "ab") as out:
        p = subprocess.run(["nice", "make", "-C", str(tree), "-j%d" % jobs, "BUILD=" + build,
                            target], stdout=out, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
    return p.returncode == 0


def run_tests(tree, build, tests, timeout, log_path):
    """Runs the tests; returns (outcome, summary): outcome 'pass', 'fail',
    'timeout' or 'error' (no tests ran, pytest broke, or tests skipped)."""
    env = dict(os.environ, PIPEFILED_BUILD=str(tree / build))
    env.pop("CI", None)  # a CI skip-turned-failure must not count as caught
    unit = tests[0].startswith("unit:")
    if unit:
        binary = "%s/tests/%s" % (build, tests[0][5:])
        if not make(tree, build, 1, log_path, binary):
            return "error", "the unit test %s does not build" % binary
        argv = ["timeout", "-k", "20", str(timeout), str(tree / binary)]
    else:
        argv = ["timeout", "-k", "20", str(timeout), PYTHON, "-m", "pytest", "-q", "-rfEs",
                "-p", "no:cacheprovider", "-x"] + tests
    t0 = time.monotonic()
    with open(log_path, "ab") as out:
        out.write(("\n$ %s\n" % " ".join(argv)).encode())
        out.flush()
        p = subprocess.run(argv, cwd=str(tree), env=env, stdout=out, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
    secs = time.monotonic() - t0
    lines = [l for l in log_path.read_text(errors="replace").rsplit("\n$ ", 1)[-1].splitlines()
             if l.strip()]
    if unit:  # cmocka: "[  FAILED  ] N test(s), listed below:" then the names
        failed = [l.split("]", 1)[1].strip() for l in lines
                  if l.startswith("[  FAILED  ]") and "test(s)" not in l]
        summary = "%s (%.0f s)" % (("FAILED " + failed[0]) if failed else
                                   "unit test exited %d" % p.returncode, secs)
        if p.returncode in (124, 137):
            return "timeout", summary
        return ("pass" if p.returncode == 0 else "fail"), summary
    tail = lines[-1:] or [""]
    first = [l.split(" - ")[0] for l in lines if l.startswith(("FAILED ", "ERROR "))][:1]
    summary = "%s (%.0f s)" % ("; ".join(first + [tail[0].strip("= ")]), secs)
    if p.returncode in (124, 137):
        return "timeout", summary
    if p.returncode == 1:
        return "fail", summary
    if p.returncode == 0:
        return ("error" if " skipped" in tail[0] else "pass"), summary
    return "error", "pytest exited %d: %s" % (p.returncode, summary)


def run_one(m, base, work, build, files):
    name, rule, path, old, new, tests, timeout = m
    tree = work / name
    log_path = work / (name + ".log")
    log_path.write_text("")
    src = (base / path).read_text()
    copy_tree(base, tree, files)
    # the build of the unmutated tree, so that only the mutated file recompiles
    shutil.copytree(base / build, tree / build, symlinks=True, dirs_exist_ok=True)
    (tree / path).write_text(src.replace(old, new, 1))
    os.utime(tree / path)  # newer than every object, whatever the clock did
    if not make(tree, build, 1, log_path):
        return "ERROR", "the mutant does not build (see %s)" % log_path
    outcome, summary = run_tests(tree, build, tests, timeout, log_path)
    if outcome in ("fail", "timeout"):
        shutil.rmtree(tree, ignore_errors=True)
        # The suite keeps a failed test's temp dir for a look; this failure
        # was the point, and a dir may hold a link to the 256 MiB big file.
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("kept test dir: /tmp/pf-"):
                shutil.rmtree(line.split(": ", 1)[1].strip(), ignore_errors=True)
        return "CAUGHT", ("hung past %d s" % timeout if outcome == "timeout" else summary)
    if outcome == "pass":
        return "NOT CAUGHT", "%s (see %s)" % (summary, log_path)
    return "ERROR", "%s (see %s)" % (summary, log_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"),
                    help="the build directory name (as make's BUILD); the copies go "
                         "under BUILD/mutate")
    ap.add_argument("--jobs", type=int, default=2, choices=(1, 2),
                    help="mutations at a time (default 2; the suite is not made for more)")
    ap.add_argument("names", nargs="*", help="only these mutations")
    args = ap.parse_args()

    chosen = [m for m in MUTATIONS if not args.names or m[0] in args.names]
    unknown = set(args.names) - {m[0] for m in MUTATIONS}
    if unknown:
        log("mutate: no such mutation: %s" % ", ".join(sorted(unknown)))
        return 2
    if os.geteuid() != 0:
        log("mutate: needs root (the identity tests switch to other uids)")
        return 2

    work = (REPO / args.build / "mutate").resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = {}

    # Stale entries first: they need no build.
    for m in chosen:
        n = (REPO / m[2]).read_text().count(m[3]) if (REPO / m[2]).exists() else 0
        if n != 1:
            results[m[0]] = ("STALE", "%s: the original snippet occurs %d times, not once: %r"
                             % (m[2], n, m[3][:70]))
    live = [m for m in chosen if m[0] not in results]

    # One snapshot of the tree, built once; every mutant starts from it.
    files = tree_files(REPO)
    base = work / "base"
    log("mutate: copying the tree to %s and building it" % base)
    copy_tree(REPO, base, files)
    base_log = work / "base.log"
    base_log.write_text("")
    if not make(base, "build", args.jobs, base_log):
        log("mutate: the unmutated tree does not build (see %s)" % base_log)
        return 1

    # Each distinct selection must pass, nothing skipped, on the unmutated tree.
    selections = []
    for m in live:
        if m[5] not in selections:
            selections.append(m[5])
    bad_sel = {}

    def baseline(i, sel):
        lp = work / ("baseline-%d.log" % i)
        lp.write_text("")
        timeout = max(m[6] for m in live if m[5] == sel)
        outcome, summary = run_tests(base, "build", sel, timeout, lp)
        return sel, outcome, "%s (see %s)" % (summary, lp)

    log("mutate: %d test selections on the unmutated tree" % len(selections))
    with ThreadPoolExecutor(max_workers=args.jobs) as ex:
        for sel, outcome, summary in ex.map(lambda a: baseline(*a), enumerate(selections)):
            if outcome != "pass":
                bad_sel[tuple(sel)] = "unmutated tree: %s: %s" % (outcome, summary)
                log("  baseline %s: %s" % (" ".join(sel), bad_sel[tuple(sel)]))
    for m in live:
        if tuple(m[5]) in bad_sel:
            results[m[0]] = ("ERROR", bad_sel[tuple(m[5])])
    live = [m for m in live if m[0] not in results]

    log("mutate: %d mutations, %d at a time" % (len(live), args.jobs))
    with ThreadPoolExecutor(max_workers=args.jobs) as ex:
        futs = {m[0]: ex.submit(run_one, m, base, work, "build", files) for m in live}
        for m in live:
            try:
                results[m[0]] = futs[m[0]].result()
            except Exception as e:  # a broken copy or build: say so, go on
                results[m[0]] = ("ERROR", "%s: %s" % (type(e).__name__, e))
            log("  %-12s %-28s %s" % (results[m[0]][0], m[0], results[m[0]][1]))

    log("")
    log("mutation                      result       rule")
    for m in chosen:
        log("%-29s %-12s %s" % (m[0], results[m[0]][0], m[1]))
        if results[m[0]][0] != "CAUGHT":
            log("%-29s   %s" % ("", results[m[0]][1]))
    caught = sum(1 for m in chosen if results[m[0]][0] == "CAUGHT")
    log("caught %d of %d" % (caught, len(chosen)))
    if caught == len(chosen):
        shutil.rmtree(base, ignore_errors=True)
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())

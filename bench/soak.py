#!/usr/bin/python3
"""soak.py - `make soak`: pipefiled under a long mixed load with fault clients.

Owns the soak run of issue 11 (bench/README.md, "Soak"). As root, it starts
build/pipefiled with the shipped defaults except a temporary socket, root and
access log (and no per-user connection limit, which the load would hit), then
for SOAK_S seconds (default 600) runs, each as its own non-root uid (setpriv):

  well-behaved  pfbench, 4 KiB keep-alive; pfbench, 4 KiB one request per
                connection; pfbench, a 64 MiB file keep-alive; pfp.py `load`
                over a mix of a readable file, a forbidden one (EACCES
                expected) and a missing one (ENOENT expected), in rounds;
  faults        (each a loop for the whole run) connect and vanish; ask for
                the big file and vanish; send half a header and stall; ask
                for the big file and never read; read one byte a second;
                send 100 pipelined requests and close;
  signals       SIGHUP (reload) every SOAK_HUP_S seconds, and every
                SOAK_ROTATE_S seconds a rotation: the access log renamed,
                then SIGUSR1 (reopen), as logrotate does.

It samples the daemon's VmRSS and open descriptors every SOAK_SAMPLE_S
seconds, stops the faults and the load, lets the daemon drain, stops it with
SIGTERM and prints the figures. Exit 1 (with the reasons) when the daemon
died or exited non-zero, a well-behaved client saw an unexpected answer,
access-log lines are missing or reported dropped, RSS at the end is above the
RSS after warm-up by more than max(10 %, 2 MiB), or the descriptors at the
end are more than 8 above those of the idle daemon before the load.

Everything it starts runs in its own session and is killed by its process
group at exit, Ctrl-C included; the temporary directory is removed.

`soak.py fault KIND SOCK` (used by the driver, run as a non-root uid) runs
one fault loop until SIGTERM and then prints its counts as JSON.
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
PYTHON = "/usr/bin/python3"

SMALL = 4096
BIG = 64 << 20
# One uid per client stream, so the access log can be counted per stream.
UID_KA, UID_CLOSE, UID_BIG, UID_MIX, UID_FAULT = 61511, 61512, 61513, 61514, 61515
RSS_TOL_PCT, RSS_TOL_KIB, FD_TOL = 10, 2048, 8
FAULTS = ("vanish", "vanish_mid", "half_header", "no_read", "slow_read", "pipeline")


# ------------------------------------------------------------ fault clients

def _fault_main(kind, sockpath):
    sys.path.insert(0, HERE)
    import pfp  # copied beside this file by the driver

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    counts = {"kind": kind, "rounds": 0, "server_closed": 0, "gave_up": 0,
              "connect_failed": 0}
    lock = threading.Lock()

    def count(key):
        with lock:
            counts[key] += 1

    def conn(rcvbuf=None):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(5)
        try:
            s.connect(sockpath)
        except OSError:
            s.close()
            count("connect_failed")
            stop.wait(0.2)
            return None
        return s

    def wait_hup(s, cap, trickle=False):
        """Until the server closes (POLLHUP, seen even with unread bytes
        queued) or cap seconds; trickle reads one byte a second meanwhile."""
        p = select.poll()
        p.register(s, select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0x2000))
        end = time.monotonic() + cap
        while not stop.is_set() and time.monotonic() < end:
            ev = p.poll(1000)
            if any(e & (select.POLLHUP | select.POLLERR) for _, e in ev):
                count("server_closed")
                return
            if trickle:
                try:
                    if not s.recv(1):
                        count("server_closed")
                        return
                except OSError:
                    count("server_closed")
                    return
        if not stop.is_set():
            count("gave_up")

    big = pfp.get_request("/big")
    hundred = b"".join(pfp.get_request("/small") for _ in range(100))
    # Clients that hold a connection until the server closes it:
    HOLDERS = {
        "half_header": (None, big[:11], 40, False),  # half of the 22-byte
                                                     # header: request_timeout
        "no_read": (4096, big, 60, False),           # send_timeout
        "slow_read": (4096, big, 60, True),          # send_timeout, or done
    }

    def one_round():
        if kind == "vanish":
            s = conn()
            if s:
                s.close()
            stop.wait(0.05)
        elif kind == "vanish_mid":
            s = conn()
            if s:
                s.sendall(big)
                s.recv(65536)  # the transfer has begun
                s.close()
            stop.wait(0.1)
        elif kind in HOLDERS:
            # (receive buffer, bytes sent, seconds to wait for the close,
            # read a byte a second meanwhile)
            rcvbuf, sent, cap, trickle = HOLDERS[kind]
            s = conn(rcvbuf)
            if s:
                s.sendall(sent)
                wait_hup(s, cap, trickle)
                s.close()
        elif kind == "pipeline":
            s = conn()
            if s:
                try:
                    s.sendall(hundred)
                except OSError:
                    pass
                s.close()
            stop.wait(0.2)
        count("rounds")

    # Several at once for the ones that hold a connection for seconds.
    n = {"half_header": 4, "no_read": 2, "slow_read": 2}.get(kind, 1)

    def loop():
        while not stop.is_set():
            try:
                one_round()
            except OSError:
                count("connect_failed")
                stop.wait(0.2)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    while not stop.is_set():
        stop.wait(1)
    for t in threads:
        t.join(timeout=3)
    sys.stdout.write(json.dumps(counts) + "\n")
    sys.stdout.flush()
    os._exit(0)


# ------------------------------------------------------------ driver

class Interrupted(Exception):
    pass


def _on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def count_log(path, by_uid):
    """Add path's access-log lines to by_uid[uid][status]; the line count."""
    lines = 0
    if not os.path.exists(path):
        return 0
    uid_re, status_re = re.compile(rb"\buid=(\d+)"), re.compile(rb"\bstatus=(\w+)")
    with open(path, "rb") as f:
        for raw in f:
            lines += 1
            mu, ms = uid_re.search(raw), status_re.search(raw)
            u = int(mu.group(1)) if mu else -1
            st = ms.group(1).decode() if ms else "?"
            d = by_uid.setdefault(u, {})
            d[st] = d.get(st, 0) + 1
    return lines


def env_num(name, default, conv=float):
    v = os.environ.get(name, "")
    return conv(v) if v.strip() else default


class Soak:
    def __init__(self, build):
        self.build = os.path.abspath(build)
        self.dir = None
        self.procs = []  # every Popen we started (own session each)
        self.daemon = None
        self.fail = []
        self.samples = []  # (t, rss_kib, fds)

    # -- processes

    def spawn(self, argv, uid=None, **kw):
        if uid is not None:
            argv = [SETPRIV, "--reuid", str(uid), "--regid", str(uid),
                    "--clear-groups", "--"] + argv
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=self.dir,
                             start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def cleanup(self):
        # Each child leads its own session: its process group holds it and
        # anything it started. Only the groups we created, by their id.
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        self.procs = []
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- setup

    def setup(self):
        self.dir = tempfile.mkdtemp(prefix="pfsoak.")
        os.chmod(self.dir, 0o755)
        d = self.dir
        bin_ = os.path.join(d, "bin")
        files = os.path.join(d, "files")
        os.mkdir(bin_, 0o755)
        os.mkdir(files, 0o755)
        os.chmod(bin_, 0o755)
        os.chmod(files, 0o755)
        # Copies the client uids can surely read, whatever the modes above
        # the worktree.
        shutil.copy(os.path.join(self.build, "pfbench"), bin_)
        shutil.copy(os.path.abspath(__file__), os.path.join(bin_, "soak.py"))
        shutil.copy(os.path.join(HERE, "..", "tests", "system", "pfp.py"), bin_)
        for n in os.listdir(bin_):
            os.chmod(os.path.join(bin_, n), 0o755)
        with open(os.path.join(files, "small"), "wb") as f:
            f.write(os.urandom(SMALL))
        chunk = os.urandom(1 << 20)
        with open(os.path.join(files, "big"), "wb") as f:
            for _ in range(BIG >> 20):
                f.write(chunk)
        with open(os.path.join(files, "secret"), "wb") as f:
            f.write(b"root only\n")
        os.chmod(os.path.join(files, "small"), 0o644)
        os.chmod(os.path.join(files, "big"), 0o644)
        os.chmod(os.path.join(files, "secret"), 0o600)
        self.sock = os.path.join(d, "pf.sock")
        self.access = os.path.join(d, "access.log")
        self.errlog = os.path.join(d, "pipefiled.stderr")
        self.ini = os.path.join(d, "pipefiled.ini")
        with open(self.ini, "w") as f:
            f.write("; written by bench/soak.py: shipped defaults but these\n"
                    "[server]\nsocket = %s\nroot = %s\nmax_connections_per_user = 0\n"
                    "[log]\naccess_log = %s\n" % (self.sock, files, self.access))
        import hashlib
        with open(os.path.join(files, "small"), "rb") as f:
            small_sha = hashlib.sha256(f.read()).hexdigest()
        self.spec = os.path.join(d, "mix.json")
        with open(self.spec, "w") as f:
            json.dump([{"path": "/small", "status": "OK", "sha256": small_sha, "size": SMALL},
                       {"path": "/secret", "status": "EACCES"},
                       {"path": "/missing", "status": "ENOENT"}], f)
        os.chmod(self.spec, 0o644)

    def start_daemon(self):
        err = open(self.errlog, "ab")
        self.daemon = self.spawn([os.path.join(self.build, "pipefiled"), "-c", self.ini],
                                 stdout=err, stderr=err)
        err.close()
        deadline = time.monotonic() + 20
        while not os.path.exists(self.sock) or "ready" not in self.errtext():
            if self.daemon.poll() is not None:
                raise RuntimeError("pipefiled exited %d at start:\n%s"
                                   % (self.daemon.returncode, self.errtext()[-2000:]))
            if time.monotonic() > deadline:
                raise RuntimeError("pipefiled not ready in 20 s:\n%s" % self.errtext()[-2000:])
            time.sleep(0.05)

    def errtext(self):
        try:
            with open(self.errlog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def sample(self, t0):
        pid = self.daemon.pid
        s = (round(time.monotonic() - t0, 1), proc_rss_kib(pid), proc_fds(pid))
        self.samples.append(s)
        return s

    # -- the run

    def run(self, seconds, warmup, every, hup_s, rotate_s):
        self.setup()
        self.start_daemon()
        pid = self.daemon.pid
        time.sleep(0.5)
        fds_idle = proc_fds(pid)
        rss_idle = proc_rss_kib(pid)
        bin_ = os.path.join(self.dir, "bin")
        pfbench = os.path.join(bin_, "pfbench")
        t0 = time.monotonic()
        end = t0 + seconds

        def bench(uid, path, size, conns, close):
            argv = [pfbench, "load", "-s", self.sock, "-p", path, "-e", str(size),
                    "-c", str(conns), "-t", "1", "-d", str(seconds), "-w", "0"]
            if close:
                argv.append("-1")
            return self.spawn(argv, uid, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)

        streams = [("4 KiB keep-alive", UID_KA, 8, bench(UID_KA, "/small", SMALL, 8, False)),
                   ("4 KiB one per conn", UID_CLOSE, 4, bench(UID_CLOSE, "/small", SMALL, 4, True)),
                   ("64 MiB keep-alive", UID_BIG, 2, bench(UID_BIG, "/big", BIG, 2, False))]
        faults = {k: self.spawn([PYTHON, "-I", os.path.join(bin_, "soak.py"), "fault", k,
                                 self.sock], UID_FAULT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for k in FAULTS}
        mix = {"runs": 0, "requests": 0, "ok": 0, "mismatch": 0, "errors": 0, "samples": []}
        mix_p = None
        mix_round = 0
        # Rotated files are counted (by uid and status) and removed one
        # rotation later, when the daemon has long reopened: a long run would
        # otherwise keep gigabytes of log.
        by_uid = {}
        counted = 0
        hups = rotations = 0
        next_hup, next_rot, next_sample = t0 + hup_s, t0 + rotate_s, t0 + every
        rss_start = fds_start = None

        def mix_start(n):
            # Rounds with and without pipelining; each is a few seconds.
            return self.spawn([PYTHON, "-I", os.path.join(bin_, "pfp.py"), self.sock, "load",
                               "--spec", "@" + self.spec, "--conns", "4",
                               "--requests", "300", "--pipeline", str(1 + 7 * (n % 2)),
                               "--seed", str(n + 1)], UID_MIX,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def mix_collect(p):
            out, err = p.communicate(timeout=120)
            self.procs.remove(p)
            try:
                r = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                mix["errors"] += 1
                mix["samples"].append("pfp.py load gave no result: %s" % err.strip()[-300:])
                return
            mix["runs"] += 1
            for k in ("requests", "ok", "mismatch", "errors"):
                mix[k] += r[k]
            mix["samples"].extend(r["samples"][:3])

        print("soak: %d s of mixed load and faults against pipefiled pid %d (%s)"
              % (seconds, pid, self.dir), flush=True)
        while True:
            now = time.monotonic()
            if self.daemon.poll() is not None:
                self.fail.append("pipefiled died during the run (status %d)"
                                 % self.daemon.returncode)
                break
            if mix_p is not None and mix_p.poll() is not None:
                mix_collect(mix_p)
                mix_p = None
            if now >= end:
                break
            if mix_p is None:
                mix_p = mix_start(mix_round)
                mix_round += 1
            if now >= next_hup:
                os.kill(pid, signal.SIGHUP)
                hups += 1
                next_hup += hup_s
            if now >= next_rot:
                rotations += 1
                if rotations > 1:
                    old = "%s.%d" % (self.access, rotations - 1)
                    counted += count_log(old, by_uid)
                    os.unlink(old)
                os.rename(self.access, "%s.%d" % (self.access, rotations))
                os.kill(pid, signal.SIGUSR1)
                next_rot += rotate_s
            if now >= next_sample:
                t, rss, fds = self.sample(t0)
                if rss_start is None and t >= warmup:
                    rss_start, fds_start = rss, fds
                    print("soak: warm-up done at %.0f s: RSS %d KiB, %d fds" % (t, rss, fds),
                          flush=True)
                next_sample += every
            time.sleep(0.2)
        alive = self.daemon.poll() is None
        if alive:
            last_loaded = self.sample(t0)
            if rss_start is None:
                rss_start, fds_start = last_loaded[1], last_loaded[2]

        # Faults first (they print their counts on SIGTERM), then the load.
        fault_counts = {}
        for k, p in faults.items():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for k, p in faults.items():
            try:
                out, _ = p.communicate(timeout=15)
                fault_counts[k] = json.loads(out.strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                fault_counts[k] = None
        if mix_p is not None:
            try:
                mix_collect(mix_p)
            except subprocess.TimeoutExpired:
                self.fail.append("pfp.py load round did not finish")
        results = []
        for name, uid, conns, p in streams:
            try:
                out, err = p.communicate(timeout=60 + BIG // (1 << 20))
            except subprocess.TimeoutExpired:
                out, err = "", "timed out"
            m = re.search(r"^result (.*)$", out, re.M)
            res = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", m.group(1))} if m else None
            results.append((name, uid, conns, res, err.strip()))

        # Drain: the daemon closes what the clients left; give it a moment.
        rss_end = fds_end = None
        if self.daemon.poll() is None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc_fds(pid) > fds_idle + FD_TOL:
                time.sleep(0.5)
            time.sleep(1)
            _, rss_end, fds_end = self.sample(t0)

        # Stop the daemon: it must exit 0 within shutdown_timeout (10 s) and
        # a grace; then every access-log line and drop report is final.
        rc = self.daemon.poll()
        if rc is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                rc = self.daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                rc = None
                self.fail.append("pipefiled did not exit within 20 s of SIGTERM")
            if rc is not None and rc != 0:
                self.fail.append("pipefiled exited %d after SIGTERM" % rc)
        elif alive:
            self.fail.append("pipefiled died while draining (status %d)" % rc)
        duration = time.monotonic() - t0

        # The access log: the current file, after the rotated ones counted
        # during the run.
        if rotations:
            counted += count_log("%s.%d" % (self.access, rotations), by_uid)
        counted += count_log(self.access, by_uid)
        dropped = sum(int(n) for n in re.findall(r"access log: (\d+) records dropped",
                                                 self.errtext()))

        # ---- report
        def fmt(d):
            return " ".join("%s=%d" % kv for kv in sorted(d.items())) or "-"

        print()
        print("soak: duration %.0f s (load %d s, warm-up %d s), %d SIGHUP, %d rotations "
              "(rename + SIGUSR1)" % (duration, seconds, warmup, hups, rotations))
        total = {}
        for d in by_uid.values():
            for s, n in d.items():
                total[s] = total.get(s, 0) + n
        print("requests served (access log, %d lines in %d files): %s"
              % (counted, rotations + 1, fmt(total)))
        client_errors = 0
        lost = 0
        for name, uid, conns, res, err in results:
            logged = by_uid.get(uid, {})
            if res is None:
                self.fail.append("%s: pfbench gave no result: %s" % (name, err[-300:]))
                print("  %-20s uid %d: no result; log %s" % (name, uid, fmt(logged)))
                continue
            reqs, errs = int(res["reqs"]), int(res["errors"])
            client_errors += errs
            # pfbench counts responses it completed; the daemon logs those
            # and the few in flight when pfbench stopped.
            missing = max(0, reqs - logged.get("OK", 0))
            lost += missing
            print("  %-20s uid %d: client %d ok, %d errors, p99 %.0f us; log %s"
                  % (name, uid, reqs, errs, res["p99_us"], fmt(logged)))
            if errs:
                self.fail.append("%s: %d errors seen by the client: %s" % (name, errs, err[-300:]))
            if missing:
                self.fail.append("%s: %d responses the client got have no access-log line"
                                 % (name, missing))
        logged = by_uid.get(UID_MIX, {})
        print("  %-20s uid %d: %d rounds, %d requests: %d as expected, %d wrong answers, "
              "%d failed; log %s" % ("mixed OK/EACCES/ENOENT", UID_MIX, mix["runs"],
                                     mix["requests"], mix["ok"], mix["mismatch"],
                                     mix["errors"], fmt(logged)))
        client_errors += mix["mismatch"] + mix["errors"]
        if mix["mismatch"] or mix["errors"]:
            self.fail.append("mixed stream: %d wrong answers, %d failed: %s"
                             % (mix["mismatch"], mix["errors"], "; ".join(mix["samples"][:3])))
        mix_missing = max(0, mix["ok"] + mix["mismatch"] - sum(logged.values()))
        lost += mix_missing
        if mix_missing:
            self.fail.append("mixed stream: %d answers have no access-log line" % mix_missing)
        print("  %-20s uid %d: log %s" % ("fault clients", UID_FAULT,
                                          fmt(by_uid.get(UID_FAULT, {}))))
        for k in FAULTS:
            c = fault_counts.get(k)
            if c is None:
                print("    %-12s no counts (did not stop cleanly)" % k)
                self.fail.append("fault client %s did not report" % k)
            else:
                print("    %-12s %d rounds, server closed %d, gave up %d, connect failed %d"
                      % (k, c["rounds"], c["server_closed"], c["gave_up"], c["connect_failed"]))
        other = {u: d for u, d in by_uid.items()
                 if u not in (UID_KA, UID_CLOSE, UID_BIG, UID_MIX, UID_FAULT)}
        if other:
            print("  other uids in the log: %s" % "; ".join("%d: %s" % (u, fmt(d))
                                                          for u, d in sorted(other.items())))
        print("errors seen by well-behaved clients: %d" % client_errors)
        print("lost log lines: %d reported dropped by the daemon, %d answers without a line"
              % (dropped, lost))
        if dropped:
            self.fail.append("the daemon reported %d access-log records dropped" % dropped)
        loaded = [s for s in self.samples if s[0] >= warmup] or self.samples
        rss_max = max(s[1] for s in self.samples) if self.samples else 0
        fds_max = max(s[2] for s in self.samples) if self.samples else 0
        print("RSS KiB: idle %d, start (after warm-up) %s, end (drained) %s, max %d "
              "(%d samples every %g s)" % (rss_idle, rss_start, rss_end, rss_max,
                                          len(self.samples), every))
        print("fds:     idle %d, start (after warm-up, under load) %s, end (drained) %s, max %d"
              % (fds_idle, fds_start, fds_end, fds_max))
        if loaded:
            print("RSS over the run (t s: KiB/fds): %s" % ", ".join(
                "%.0f: %d/%d" % s for s in loaded[::max(1, len(loaded) // 8)]))
        if rss_end is not None:
            tol = max(rss_start * RSS_TOL_PCT // 100, RSS_TOL_KIB)
            if rss_end > rss_start + tol:
                self.fail.append("RSS grew: %d KiB at the end, %d after warm-up (tolerance +%d KiB)"
                                 % (rss_end, rss_start, tol))
            if fds_end > fds_idle + FD_TOL:
                self.fail.append("descriptors grew: %d at the end, %d idle before the load "
                                 "(tolerance +%d)" % (fds_end, fds_idle, FD_TOL))
        for line in self.errtext().splitlines():
            if re.search(r"AddressSanitizer|runtime error: |Assertion ", line, re.I):
                self.fail.append("error log: %s" % line.strip()[:200])
                break
        if self.fail:
            print("soak: FAIL")
            for f in self.fail:
                print("  - %s" % f)
            return 1
        print("soak: PASS (tolerances: RSS +max(%d%%, %d KiB) over the warm-up figure, "
              "fds +%d over the idle figure)" % (RSS_TOL_PCT, RSS_TOL_KIB, FD_TOL))
        return 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "fault":
        _fault_main(argv[2], argv[3])
        return 0
    build = "build"
    if "--build" in argv:
        build = argv[argv.index("--build") + 1]
    if os.geteuid() != 0:
        sys.stderr.write("soak.py: needs root (the clients run as other uids via setpriv)\n")
        return 2
    for need in ("pipefiled", "pfbench"):
        if not os.access(os.path.join(build, need), os.X_OK):
            sys.stderr.write("soak.py: %s/%s missing (make all %s/pfbench)\n"
                             % (build, need, build))
            return 2
    seconds = env_num("SOAK_S", 600, int)
    warmup = env_num("SOAK_WARMUP_S", min(60, max(10, seconds // 10)), int)
    every = env_num("SOAK_SAMPLE_S", 5.0)
    hup_s = env_num("SOAK_HUP_S", 3.0)
    rotate_s = env_num("SOAK_ROTATE_S", 10.0)
    if warmup >= seconds:
        sys.stderr.write("soak.py: SOAK_S must be longer than the warm-up (%d s)\n" % warmup)
        return 2
    s = Soak(build)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        return s.run(seconds, warmup, every, hup_s, rotate_s)
    except Interrupted as e:
        print("\nsoak: interrupted (%s); cleaning up" % e, flush=True)
        return 130
    except RuntimeError as e:
        print("soak: FAIL: %s" % e, flush=True)
        return 1
    finally:
        # No signal may cut the cleanup short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        s.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv))

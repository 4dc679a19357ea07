#!/usr/bin/python3
"""bench/run.py - `make bench`: pipefiled beside nginx and a bare sendfile
server, side by side in one run, on the same files with the same load
generator; prints one table of medians and writes it to BUILD/bench/last.md.

Servers (all on Unix sockets in one temp dir):
  pipefiled        its shipped defaults, identity switch on (the load runs as
                   uid BENCH_UID through setpriv), access log to a file;
  nginx (log)      Debian's nginx-light (bench/nginx.conf.in), sendfile on,
                   access log written per request;
  nginx (buf log)  the same with `buffer=64k flush=1s`;
  baseline         bench/pfbase.c: thread per connection, open/fstat/header/
                   sendfile, 4 MiB SO_SNDBUF, no identity, no log.
Load: bench/pfbench.c (epoll, 2 threads), PFP/1 to pipefiled and the
baseline, HTTP/1.1 to nginx. For each scenario the servers take turns, round
after round (BENCH_ROUNDS, default 3), and the table shows medians. Server
CPU per request is utime+stime of the server's process tree from /proc over
exactly the measured window (pfbench prints its start and end).

Environment: BENCH_S seconds per run (default 3), BENCH_ROUNDS (3),
BENCH_WARMUP (0.5), BENCH_ONLY (comma list of scenario keys: ka, close,
big1, big4, scale, idle), BENCH_BIG_MIB (1024), BENCH_UID (61500).
Needs root (setpriv, nginx's user switch). Everything it starts is stopped
on exit, Ctrl-C included.
"""
import argparse
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NGINX = "/usr/sbin/nginx"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SMALL = 4096
NOFILE = 65536  # 10,000 idle connections on both ends, with room


# ------------------------------------------------------------ /proc

def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    # comm may hold spaces and parentheses: split after the last ')'
    return s[s.rindex(")") + 2:].split()


def proc_tree(pid):
    """pid and all its descendants (nginx's master and workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def tree_cpu_ticks(pid):
    """utime+stime of the tree (a process's stat covers all its threads,
    exited ones too)."""
    total = 0
    for p in proc_tree(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        total += int(f[11]) + int(f[12])  # fields 14 and 15 of stat(5)
    return total


def tree_rss_kib(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def tree_fds(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            total += len(os.listdir("/proc/%d/fd" % p))
        except OSError:
            pass
    return total


def start_time(pid):
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def listening(path):
    """Whether a socket bound at path listens (/proc/net/unix), without a
    probe connection that a server would count or log."""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == str(path) and int(parts[3], 16) & 0x10000:
                return True
    return False


# ------------------------------------------------------------ servers

def nginx_conf(template, dir, root, sock, access_log, workers):
    """bench/nginx.conf.in filled in (the test uses it too)."""
    text = Path(template).read_text()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for k, v in (("DIR", dir), ("ROOT", root), ("SOCK", sock),
                 ("ACCESS_LOG", access_log), ("WORKERS", workers),
                 ("NOFILE", nofile)):
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"^[^#]*(@[A-Z_]+@)", text, re.M)
    assert not left, "unfilled in nginx.conf.in: %r" % left
    return text


class Server:
    """One server process (and its children), its socket and protocol."""

    def __init__(self, name, proto, sock, argv, dir, env=None):
        self.name, self.proto, self.sock, self.argv = name, proto, sock, argv
        self.dir = dir
        self.env = env
        self.proc = None
        self.known = {}  # pid -> start time, for a safe kill at the end

    def start(self, ready, timeout=20):
        err = open(self.dir / "stderr.log", "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=err, cwd=str(self.dir),
                                     start_new_session=True, env=self.env)
        deadline = time.monotonic() + timeout
        while not (os.path.exists(self.sock) and listening(self.sock) and ready()):
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %d:\n%s" % (self.name, self.proc.returncode,
                                                          self.stderr()[-2000:]))
            if time.monotonic() > deadline:
                raise RuntimeError("%s not ready in %ds:\n%s" % (self.name, timeout,
                                                                 self.stderr()[-2000:]))
            time.sleep(0.05)
        self.remember()

    def stderr(self):
        try:
            return (self.dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""

    def remember(self):
        for p in proc_tree(self.proc.pid):
            self.known.setdefault(p, start_time(p))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.remember()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Children that outlived their parent (an nginx worker): only the
        # very processes we saw, never a recycled pid.
        for pid, st in self.known.items():
            if st is not None and start_time(pid) == st:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.proc = None


# ------------------------------------------------------------ load

class Bench:
    def __init__(self, build, dir, uid, warmup):
        self.pfbench = str(build / "pfbench")
        self.dir = dir
        self.uid = uid
        self.warmup = warmup
        self.clients = []

    def as_client(self, argv):
        return [SETPRIV, "--reuid", str(self.uid), "--regid", str(self.uid),
                "--clear-groups", "--"] + argv

    def popen(self, argv, stdin=subprocess.DEVNULL):
        p = subprocess.Popen(self.as_client(argv), stdin=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=str(self.dir),
                             start_new_session=True)
        self.clients.append(p)
        return p

    def kill_clients(self):
        for p in self.clients:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.clients = []

    def load(self, server, path, expect, conns, close, seconds):
        """One run; returns a dict of the result line plus cpu_us_per_req."""
        argv = [self.pfbench, "load", "-s", str(server.sock), "-p", path,
                "-e", str(expect), "-P", server.proto, "-c", str(conns),
                "-t", "2", "-d", str(seconds), "-w", str(self.warmup)]
        if close:
            argv.append("-1")
        p = self.popen(argv)
        cpu0 = cpu1 = None
        res = None
        for line in p.stdout:
            if line.startswith("measure start"):
                cpu0 = tree_cpu_ticks(server.proc.pid)
            elif line.startswith("measure end"):
                cpu1 = tree_cpu_ticks(server.proc.pid)
            elif line.startswith("result "):
                res = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}
        err = p.stderr.read()
        p.wait(timeout=60)
        self.clients.remove(p)
        if res is None or cpu0 is None or cpu1 is None:
            raise RuntimeError("pfbench against %s gave no result: %s" % (server.name, err))
        if not server.alive():
            raise RuntimeError("%s died under load:\n%s" % (server.name, server.stderr()[-2000:]))
        if res["errors"]:
            # Shown in the table; a server that fails requests is not fast.
            print("  %s: %d errors: %s" % (server.name, res["errors"], err.strip()[-300:]))
        cpu_s = (cpu1 - cpu0) / CLK_TCK
        res["cpu_us"] = cpu_s * 1e6 / res["reqs"] if res["reqs"] else 0
        # A huge file completes a handful of requests in a window: its CPU
        # is per gigabyte moved instead.
        res["cpu_ms_gb"] = cpu_s * 1e3 / (res["body_rx"] / 1e9) if res["body_rx"] else 0
        res["req_s"] = res["reqs"] / res["seconds"]
        res["gb_s"] = res["body_rx"] / res["seconds"] / 1e9
        return res

    def idle(self, server, n, base_fds):
        """Hold n idle connections; returns the server tree's RSS (KiB)."""
        p = self.popen([self.pfbench, "idle", "-s", str(server.sock), "-n", str(n),
                        "-P", server.proto], stdin=subprocess.PIPE)
        try:
            line = p.stdout.readline()
            m = re.match(r"idle conns=(\d+) errors=(\d+)", line)
            if not m or int(m.group(1)) != n or int(m.group(2)):
                raise RuntimeError("idle %d against %s: %r %s" % (
                    n, server.name, line, p.stderr.read() if p.poll() is not None else ""))
            # Connected is not accepted: wait for the server to hold them.
            deadline = time.monotonic() + 60
            while tree_fds(server.proc.pid) < base_fds + n:
                if time.monotonic() > deadline:
                    raise RuntimeError("%s accepted %d of %d idle connections" % (
                        server.name, tree_fds(server.proc.pid) - base_fds, n))
                time.sleep(0.1)
            time.sleep(0.5)
            return tree_rss_kib(server.proc.pid)
        finally:
            p.stdin.close()
            p.wait(timeout=60)
            self.clients.remove(p)
            deadline = time.monotonic() + 60
            while tree_fds(server.proc.pid) > base_fds and time.monotonic() < deadline:
                time.sleep(0.1)


# ------------------------------------------------------------ the run

def fmt_rate(r, big):
    return "%.2f GB/s" % r if big else "{:,.0f} req/s".format(r)


def fmt_cpu(m, big):
    return "%.0f ms/GB" % m["cpu_ms_gb"] if big else "%.1f µs/req" % m["cpu_us"]


def fmt_us(v):
    return "—" if v is None else "%d" % v


def ratio(a, b):
    return "%.2f×" % (a / b) if a and b else "—"


def machine_header(build, workers, seconds, rounds, warmup, uid):
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ngv = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    pfv = subprocess.run([str(build / "pipefiled"), "--version"], capture_output=True,
                         text=True).stdout.strip()
    return [
        "machine: %d CPUs (nproc), %s, Linux %s" % (os.cpu_count(), model, platform.release()),
        "servers: %s (defaults, identity switch to uid %d, access log to a file); "
        "%s (nginx-light, worker_processes %d = cores, sendfile on, access log plain "
        "and buffer=64k flush=1s); baseline pfbase (thread per connection, sendfile, "
        "4 MiB SO_SNDBUF, no identity, no log)" % (pfv, uid, ngv.replace("nginx version: ", ""),
                                                   workers),
        "load: pfbench (epoll, 2 threads; PFP/1 or HTTP/1.1 over the Unix socket, "
        "read() into a buffer) as uid %d; %gs per run after %gs warm-up; medians of %d "
        "alternating rounds; CPU = server process tree utime+stime over the window"
        % (uid, seconds, warmup, rounds),
    ]


SCENARIOS = [
    # key, label, file, clients, one request per connection, servers
    ("ka", "4 KiB keep-alive, 32 clients", "small", 32, False, "all"),
    ("close", "4 KiB 1 request/connection, 32 clients", "small", 32, True, "all"),
    ("big1", "BIG file, 1 client", "big", 1, False, "all"),
    ("big4", "BIG file, 4 clients", "big", 4, False, "all"),
    ("scale", "4 KiB keep-alive, 256 clients", "small", 256, False, "scale"),
    ("scale", "4 KiB keep-alive, 1,000 clients", "small", 1000, False, "scale"),
]


def targets(found):
    """One line per target of issue 10 whose scenarios ran: the measured
    ratio, the bound, and whether it is met."""
    out = []

    def line(what, got, op, bound):
        ok = got is not None and (got >= bound if op == ">=" else got <= bound)
        out.append("%-62s %s %s %.2f: %s" % (what, "%.2f" % got if got is not None else "—",
                                            op, bound, "met" if ok else "NOT met"))

    def r(med, a, b, k):
        if not med or a not in med or b not in med or not med[b][k]:
            return None
        return med[a][k] / med[b][k]

    close, ka = found.get(("close", 32)), found.get(("ka", 32))
    big1 = found.get(("big1", 1))
    if close:
        line("1 request/connection: req/s vs nginx (log)", r(close, "pipefiled", "nginx (log)", "req_s"), ">=", 1.1)
        line("1 request/connection: CPU/request vs nginx (log)", r(close, "pipefiled", "nginx (log)", "cpu_us"), "<=", 0.85)
    if ka:
        line("keep-alive: req/s vs nginx (buffered log)", r(ka, "pipefiled", "nginx (buf log)", "req_s"), ">=", 1.1)
        line("keep-alive: CPU/request vs nginx (buffered log)", r(ka, "pipefiled", "nginx (buf log)", "cpu_us"), "<=", 0.85)
    if big1:
        line("big file, 1 client: GB/s vs baseline (4 MiB SO_SNDBUF)", r(big1, "pipefiled", "baseline", "gb_s"), ">=", 0.9)
        line("big file, 1 client: GB/s vs nginx (log)", r(big1, "pipefiled", "nginx (log)", "gb_s"), ">=", 1.5)
    idle = found.get(("idle", "pipefiled"))
    if idle:
        line("idle: KiB per connection at %s held" % "{:,}".format(idle[0]), idle[1], "<=", 1.0)
    s256, s1000 = found.get(("scale", 256)), found.get(("scale", 1000))
    if ka and s1000:
        for n, m in ((256, s256), (1000, s1000)):
            if m:
                line("scaling: req/s at %s clients vs 32 (flat within 10%%)" % "{:,}".format(n),
                     m["pipefiled"]["req_s"] / ka["pipefiled"]["req_s"], ">=", 0.9)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    build = Path(args.build).resolve()
    seconds = float(os.environ.get("BENCH_S", "3"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    warmup = float(os.environ.get("BENCH_WARMUP", "0.5"))
    uid = int(os.environ.get("BENCH_UID", "61500"))
    big_mib = int(os.environ.get("BENCH_BIG_MIB", "1024"))
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    if os.geteuid() != 0:
        sys.exit("bench/run.py: run as root (the load runs as uid %d via setpriv, so "
                 "pipefiled really switches identity)" % uid)
    for f in (NGINX, SETPRIV, build / "pipefiled", build / "pfbench", build / "pfbase"):
        if not os.path.exists(f):
            sys.exit("bench/run.py: missing %s" % f)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(NOFILE, soft), max(NOFILE, hard)))
    except (ValueError, OSError):
        # No CAP_SYS_RESOURCE (a container): the hard limit is all there is.
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # pipefiled budgets 2 descriptors per connection (socket and file) plus
    # 64; the most idle connections that fit, in thousands, at most 10,000.
    idle_max = min(10000, (nofile - 64) // 2 // 1000 * 1000)

    # SIGTERM/SIGHUP end the run like Ctrl-C: through the finally below.
    def on_signal(signum, frame):
        raise KeyboardInterrupt
    # SIGINT too: a shell starts background jobs with it ignored, and Python
    # then never raises KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    workers = os.cpu_count()
    dir = Path(tempfile.mkdtemp(prefix="pfbench-", dir="/tmp"))
    servers = []
    bench = None
    try:
        os.chmod(dir, 0o755)
        files = dir / "files"
        files.mkdir(mode=0o755)
        os.chmod(files, 0o755)
        (files / "small").write_bytes(os.urandom(SMALL))
        chunk = os.urandom(4 << 20)
        with open(files / "big", "wb") as f:
            for _ in range(big_mib // 4):
                f.write(chunk)
        big_size = (big_mib // 4) * len(chunk)
        for n in ("small", "big"):
            os.chmod(files / n, 0o644)

        # pipefiled, as shipped but for the limits 10,000 idle clients of one
        # uid need: no per-user limit (with one, the last places are also kept
        # back from a user who holds many).
        pfd = dir / "pipefiled"
        pfd.mkdir(mode=0o755)
        ini = pfd / "pipefiled.ini"
        ini.write_text("; written by bench/run.py\n[server]\nsocket = %s\nroot = %s\n"
                       "max_connections = 30000\nmax_connections_per_user = 0\n"
                       "idle_timeout = 600s\n[log]\naccess_log = %s\n"
                       % (pfd / "pf.sock", files, pfd / "access.log"))
        pf = Server("pipefiled", "pfp", pfd / "pf.sock",
                    [str(build / "pipefiled"), "-c", str(ini)], pfd)
        pf.logs = [pfd / "access.log"]
        servers.append(pf)
        pf.start(lambda: "ready:" in pf.stderr())

        for name, log in (("nginx (log)", "access.log"),
                          ("nginx (buf log)", "access.log combined buffer=64k flush=1s")):
            nd = dir / ("nginx-buf" if "buf" in name else "nginx")
            nd.mkdir(mode=0o755)
            conf = nd / "nginx.conf"
            conf.write_text(nginx_conf(HERE / "nginx.conf.in", nd, files, nd / "nginx.sock",
                                       nd / log, workers))
            ng = Server(name, "http", nd / "nginx.sock",
                        [NGINX, "-p", str(nd), "-c", str(conf), "-e", str(nd / "error.log")], nd)
            ng.logs = [nd / "access.log"]
            servers.append(ng)
            # nginx's master (root) binds the socket with its umask: open it
            # up so that the client uid may connect, as pipefiled's is.
            ng.start(lambda nd=nd: (nd / "nginx.pid").exists() and len(proc_tree(ng.proc.pid)) > workers)
            os.chmod(ng.sock, 0o666)

        bd = dir / "baseline"
        bd.mkdir(mode=0o755)
        base = Server("baseline", "pfp", bd / "base.sock",
                      [str(build / "pfbase"), str(bd / "base.sock"), str(files)], bd)
        base.logs = []
        servers.append(base)
        base.start(lambda: True)
        by_name = {s.name: s for s in servers}

        header = machine_header(build, workers, seconds, rounds, warmup, uid)
        if idle_max < 10000:
            header.append("idle: %s connections, not 10,000: RLIMIT_NOFILE is %d here and "
                          "cannot be raised (no CAP_SYS_RESOURCE); pipefiled budgets 2 "
                          "descriptors per connection" % ("{:,}".format(idle_max), nofile))
        print("\n".join(header), flush=True)
        bench = Bench(build, dir, uid, warmup)
        rows = []
        found = {}  # (key, clients) -> medians per server; "idle" -> KiB/conn

        if not only or "idle" in only:
            for s in servers:
                base_fds = tree_fds(s.proc.pid)
                rss0 = tree_rss_kib(s.proc.pid)
                rows.append(("idle connections: RSS at 0", s.name, "{:,} KiB".format(rss0),
                             "", "", "", "", "", ""))
                for n in (1000, idle_max):
                    before = tree_rss_kib(s.proc.pid)
                    rss = bench.idle(s, n, base_fds)
                    per = (rss - before) / n
                    found[("idle", s.name)] = (n, per)
                    rows.append(("idle connections: %s" % "{:,}".format(n), s.name,
                                 "%.2f KiB/conn" % per, "", "", "", "", "", ""))
                    print("  idle %-6d %-16s %8.2f KiB/conn (RSS %d -> %d KiB)"
                          % (n, s.name, per, before, rss), flush=True)

        for key, label, fname, conns, close, which in SCENARIOS:
            if only and key not in only:
                continue
            big = fname == "big"
            label = label.replace("BIG", "1 GiB" if big_mib == 1024 else "%d MiB" % big_mib)
            expect = big_size if big else SMALL
            names = [s.name for s in servers] if which == "all" else \
                ["pipefiled", "nginx (log)", "baseline"]
            runs = {n: [] for n in names}
            for r in range(rounds):
                # Each round starts with the next server: no server always
                # runs first (after the idle phase) or after the same one.
                for n in names[r % len(names):] + names[:r % len(names)]:
                    s = by_name[n]
                    res = bench.load(s, "/" + fname, expect, conns, close, seconds)
                    runs[n].append(res)
                    print("  %-40s %-16s round %d: %s, %s, p50 %d us, p99 %d us"
                          % (label, n, r + 1, fmt_rate(res["gb_s"] if big else res["req_s"], big),
                             fmt_cpu(res, big), res["p50_us"], res["p99_us"]), flush=True)
                    for lp in s.logs:
                        if lp.exists():
                            os.truncate(lp, 0)  # O_APPEND writers: safe
            med = {}
            for n in names:
                med[n] = {k: statistics.median(x[k] for x in runs[n])
                          for k in ("req_s", "gb_s", "cpu_us", "cpu_ms_gb")}
                # Latency only from runs that completed a request (a 1 GiB
                # body may take longer than the window).
                done = [x for x in runs[n] if x["reqs"]]
                for k in ("p50_us", "p99_us"):
                    med[n][k] = statistics.median(x[k] for x in done) if done else None
            rk = "gb_s" if big else "req_s"
            ck = "cpu_ms_gb" if big else "cpu_us"
            found[(key, conns)] = med
            ref, bl = med.get("nginx (log)"), med.get("baseline")
            for n in names:
                m = med[n]
                errs = sum(x["errors"] for x in runs[n])
                rows.append((label, n, fmt_rate(m[rk], big) +
                             (" (%d errors)" % errs if errs else ""),
                             fmt_cpu(m, big),
                             fmt_us(m["p50_us"]), fmt_us(m["p99_us"]),
                             ratio(m[rk], ref[rk]) if ref else "—",
                             ratio(m[ck], ref[ck]) if ref else "—",
                             ratio(m[rk], bl[rk]) if bl else "—"))

        cols = ("scenario", "server", "rate", "server CPU", "p50 µs", "p99 µs",
                "rate vs nginx (log)", "CPU vs nginx (log)", "rate vs baseline")
        md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
                  for i, c in enumerate(cols)]
        print()
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(cols)))
        for r in rows:
            print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)))
        verdicts = targets(found)
        if verdicts:
            print("\ntargets (issue 10), from the medians above:")
            for v in verdicts:
                print("  " + v)
        out = build / "bench" / "last.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(["- " + h for h in header] + [""] + md +
                                  ([""] + ["- " + v for v in verdicts] if verdicts else []))
                       + "\n")
        print("\ntable written to %s" % out)
        return 0
    except KeyboardInterrupt:
        print("\nbench/run.py: interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if bench:
            bench.kill_clients()
        for s in servers:
            try:
                s.stop()
            except Exception as e:  # one stubborn server must not leave others
                print("bench/run.py: stopping %s: %s" % (s.name, e), file=sys.stderr)
        shutil.rmtree(dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

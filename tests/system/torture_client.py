#!/usr/bin/python3
"""torture_client.py - the identity-torture test's client and its oracle.

Run by test_torture.py as one of its synthetic identities (under setpriv,
with Debian's /usr/bin/python3 -I), next to a copy of pfp.py. Standard
library only.

  torture_client.py probe SPEC
      The oracle: as this process's own identity, try to open every entry's
      "file" (the file system path) for reading, the way any program of that
      user would, and print {"ids": [uid, gid, groups], "results": {path:
      "OK" | "EACCES" | "ENOENT" | ...}}. Nothing in it asks the daemon.

  torture_client.py run SOCKET SPEC --conns N --requests M --pipeline K
                    --short S --seed X
      Opens N connections and prints {"ready": N}, then waits for a line on
      stdin (so every identity's clients start together). Then N threads
      each send M GETs on their own connection, K at a time before reading
      the K answers, while one more thread makes S short connections of 1 to
      3 requests each, the last one with the CLOSE bit. SPEC is a list of
      {"path", "status", "sha256", "size"}: the answer this identity must
      get. Every answer is checked: status, header rules, and for OK the
      size, body length and the body's sha256; a body is never accepted on a
      refusal. Prints {"requests", "ok", "wrong", "errors", "samples",
      "seconds"}; a sample of a wrong answer names the file the bytes came
      from (each file's content starts with its own name).
"""

import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pfp  # noqa: E402

def _probe(spec_path):
    import errno
    with open(spec_path) as f:
        spec = json.load(f)
    # Anything else is printed as a number and matches no status: the test
    # fails on it rather than guess.
    names = {errno.EACCES: "EACCES", errno.ENOENT: "ENOENT"}
    out = {}
    for e in spec:
        try:
            fd = os.open(e["file"], os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.close(fd)
            out[e["path"]] = "OK"
        except OSError as ex:
            out[e["path"]] = names.get(ex.errno, "errno %d" % ex.errno)
    ids = [os.getuid(), os.getgid(), sorted(os.getgroups())]
    sys.stdout.write(json.dumps({"ids": ids, "results": out}) + "\n")
    return 0


def _whose(body):
    """The name a torture file's content starts with (see test_torture)."""
    if body is None:
        return "?"
    head = body[:200].split(b"\n", 1)[0]
    return head.decode("ascii", "replace")


def _check(r, e):
    """Problems with answer r to the request for spec entry e."""
    bad = r.problems()
    if r.name != e["status"]:
        bad.append("status %s, expected %s" % (r.name, e["status"]))
        if r.name == "OK":
            bad.append("received %d bytes of %r" % (r.received, _whose(r.body)))
    elif r.name == "OK":
        if r.size != e["size"] or r.body_len != e["size"] or r.received != e["size"]:
            bad.append("size %d body_len %d received %d, expected %d" %
                       (r.size, r.body_len, r.received, e["size"]))
        if r.sha256 != e["sha256"]:
            bad.append("body is not the file's: %r" % _whose(r.body))
    elif r.body_len or r.received:
        bad.append("%d body bytes on a refusal" % r.received)
    return bad


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = self.ok = self.wrong = self.errors = 0
        self.samples = []

    def add(self, ok, wrong, errors, samples):
        with self.lock:
            self.requests += ok + wrong + errors
            self.ok += ok
            self.wrong += wrong
            self.errors += errors
            self.samples.extend(samples[:5 - min(5, len(self.samples))])


def _answers(c, batch, last_close=False):
    """Send the batch's GETs at once, read and check the answers in order.
    Returns (ok, wrong, samples)."""
    reqs = [pfp.get_request(e["path"], close=last_close and i == len(batch) - 1)
            for i, e in enumerate(batch)]
    c.send(b"".join(reqs))
    ok = wrong = 0
    samples = []
    for e in batch:
        # Bodies are kept only when they might have to be named: they are
        # small, and a wrong one must say whose bytes it holds.
        r = c.read_response(keep=True)
        bad = _check(r, e)
        if bad:
            wrong += 1
            samples.append("%s: %s" % (e["path"], "; ".join(bad)))
        else:
            ok += 1
    return ok, wrong, samples


def _keepalive(c, spec, requests, pipeline, seed, stats):
    rng = random.Random(seed)
    ok = wrong = errors = 0
    samples = []
    done = 0
    try:
        while done < requests:
            batch = [rng.choice(spec) for _ in range(min(pipeline, requests - done))]
            done += len(batch)
            o, w, s = _answers(c, batch)
            ok += o
            wrong += w
            samples += s
    except (pfp.ProtocolError, OSError) as ex:
        errors += requests - ok - wrong
        samples.append("keep-alive connection after %d requests: %s" % (ok + wrong, ex))
    finally:
        c.close()
    stats.add(ok, wrong, errors, samples)


def _short(sockpath, spec, conns, seed, stats):
    rng = random.Random(seed)
    ok = wrong = errors = 0
    samples = []
    for _ in range(conns):
        batch = [rng.choice(spec) for _ in range(rng.randint(1, 3))]
        try:
            with pfp.Conn(sockpath, 60.0) as c:
                o, w, s = _answers(c, batch, last_close=True)
                ok += o
                wrong += w
                samples += s
                if not c.closed_by_peer(10.0):
                    wrong += 1
                    samples.append("short connection not closed after CLOSE")
        except (pfp.ProtocolError, OSError) as ex:
            errors += len(batch)
            samples.append("short connection: %s" % ex)
    stats.add(ok, wrong, errors, samples)


def _opt(args, name, conv=int):
    i = args.index(name)
    return conv(args[i + 1])


def _run(sockpath, spec_path, args):
    with open(spec_path) as f:
        spec = json.load(f)
    conns = _opt(args, "--conns")
    requests = _opt(args, "--requests")
    pipeline = _opt(args, "--pipeline")
    short = _opt(args, "--short")
    seed = _opt(args, "--seed")
    stats = Stats()
    try:
        keep = [pfp.Conn(sockpath, 60.0) for _ in range(conns)]
    except OSError as ex:
        sys.stdout.write(json.dumps({"error": "connect: %s" % ex}) + "\n")
        return 3
    sys.stdout.write(json.dumps({"ready": conns}) + "\n")
    sys.stdout.flush()
    sys.stdin.readline()
    t0 = time.monotonic()
    threads = [threading.Thread(target=_keepalive,
                                args=(c, spec, requests, pipeline, seed * 100 + i, stats))
               for i, c in enumerate(keep)]
    threads.append(threading.Thread(target=_short,
                                    args=(sockpath, spec, short, seed * 100 + 99, stats)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.stdout.write(json.dumps({
        "requests": stats.requests, "ok": stats.ok, "wrong": stats.wrong,
        "errors": stats.errors, "samples": stats.samples,
        "seconds": round(time.monotonic() - t0, 3)}) + "\n")
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "probe":
        return _probe(argv[2])
    if len(argv) >= 4 and argv[1] == "run":
        return _run(argv[2], argv[3], list(argv[4:]))
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))

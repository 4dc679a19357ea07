#!/usr/bin/python3
"""pfp.py - an independent PFP/1 client for the system tests.

Written from docs/protocol.md with struct, sharing no code with the C codec,
so a bug in common/proto.c cannot hide itself. Standard library only: the
tests also run this file as other uids (under setpriv) with Debian's
/usr/bin/python3 -I.

As a module: Conn, encode_request(), Response, STATUS.

As a script (prints JSON, one object per line):
  pfp.py SOCKET get PATH [PATH...] [--offset N] [--length N] [--close]
         [--stall-after N]
      One connection, the requests one after another. Each line holds
      status, name, message, size, mtime, body_len, received, sha256,
      problems (header rules broken), closed (the server closed early).
      --stall-after N: after N body bytes of the first response, print
      {"stalled": N} and sleep (the test then kills the process).
  pfp.py SOCKET stat PATH [PATH...]
  pfp.py SOCKET load --spec JSON|@FILE --conns N --requests M
         [--pipeline K] [--seed S]
      N threads, each with its own connection, doing M requests each, sent
      K at a time before reading the K answers. SPEC is a list of
      {"path", "status", "sha256"?, "size"?}; every answer is checked against
      its entry. Prints {"requests", "ok", "mismatch", "errors", "samples"}.
  A connection failure prints {"error": "...", "errno": N} and exits 3.
"""

import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time

REQ = struct.Struct(">2sBBHQQ")  # magic, version, op, path_len, offset, length
RESP = struct.Struct(">2sBBHHQqQ")  # magic, version, status, msg_len, reserved,
#                                    file_size, mtime (signed), body_len
assert REQ.size == 22 and RESP.size == 32

VERSION = 1
OP_GET = 1
OP_STAT = 2
OP_CLOSE = 0x80
PATH_MAX = 4096
MSG_MAX = 1024

STATUS = {
    0: "OK",
    1: "ENOENT",
    2: "EACCES",
    3: "ENOTREG",
    4: "EXDEV",
    5: "EPROTO",
    6: "EBUSY",
    7: "EIO",
    8: "EPERM",
    9: "ERANGE",
}
CODE = {v: k for k, v in STATUS.items()}

CHUNK = 1 << 20


class ProtocolError(Exception):
    """The server broke PFP/1 (bad header) or the stream ended early."""


class ShortBody(ProtocolError):
    def __init__(self, resp, msg):
        super().__init__(msg)
        self.resp = resp


def _b(path):
    return path if isinstance(path, bytes) else path.encode("utf-8", "surrogateescape")


def encode_request(op, path, offset=0, length=0, close=False, version=VERSION,
                   magic=b"PF", path_len=None):
    """Bytes of one request. Every field can be set to something invalid on
    purpose (op, version, magic, path_len) for the malformed-request tests."""
    p = _b(path)
    if path_len is None:
        path_len = len(p)
    return REQ.pack(magic, version, op | (OP_CLOSE if close else 0), path_len,
                    offset, length) + p


def get_request(path, offset=0, length=0, close=False):
    return encode_request(OP_GET, path, offset, length, close)


def stat_request(path, close=False):
    return encode_request(OP_STAT, path, close=close)


class Response:
    def __init__(self, status, msg_len, reserved, size, mtime, body_len,
                 version=VERSION, magic=b"pf"):
        self.status = status
        self.name = STATUS.get(status, "UNKNOWN(%d)" % status)
        self.msg_len = msg_len
        self.reserved = reserved
        self.size = size
        self.mtime = mtime
        self.body_len = body_len
        self.version = version
        self.magic = magic
        self.message = ""
        self.body = None  # bytes when kept
        self.sha256 = None  # hex digest of the body bytes received
        self.received = 0  # body bytes received
        self.elapsed = None  # seconds from request sent to response complete

    def problems(self):
        """Rules of the response header that this response breaks."""
        out = []
        if self.magic != b"pf":
            out.append("magic %r" % self.magic)
        if self.version != VERSION:
            out.append("version %d" % self.version)
        if self.status not in STATUS:
            out.append("unknown status %d" % self.status)
        if self.reserved != 0:
            out.append("reserved %d" % self.reserved)
        if self.msg_len > MSG_MAX:
            out.append("msg_len %d" % self.msg_len)
        if self.status == 0:
            if self.msg_len != 0:
                out.append("message on success: %r" % self.message)
        else:
            if self.size or self.mtime or self.body_len:
                out.append("size/mtime/body_len not 0 on error")
            if not self.message.startswith(self.name + ":"):
                out.append("message %r does not start with %s:" %
                           (self.message, self.name))
        return out

    def as_dict(self):
        return {
            "status": self.status,
            "name": self.name,
            "message": self.message,
            "size": self.size,
            "mtime": self.mtime,
            "body_len": self.body_len,
            "received": self.received,
            "sha256": self.sha256,
            "problems": self.problems(),
        }

    def __repr__(self):
        return "<Response %s %r size=%d mtime=%d body_len=%d received=%d>" % (
            self.name, self.message, self.size, self.mtime, self.body_len,
            self.received)


class Conn:
    """One connection. Reads are buffered so pipelined answers that arrive
    together are split correctly."""

    def __init__(self, path, timeout=10.0, connect=True):
        self.path = str(path)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.sent_at = None
        if connect:
            self.sock.connect(self.path)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sent_at = time.monotonic()
        self.sock.sendall(data)

    def _fill(self, want):
        """Read until the buffer holds want bytes; ProtocolError on EOF."""
        while len(self.buf) < want:
            chunk = self.sock.recv(max(CHUNK, want - len(self.buf)))
            if not chunk:
                raise ProtocolError("connection closed after %d of %d bytes" %
                                    (len(self.buf), want))
            self.buf += chunk

    def recv_exact(self, n):
        self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_header(self):
        """The 32-byte header and its message (no body)."""
        raw = self.recv_exact(RESP.size)
        magic, version, status, msg_len, reserved, size, mtime, body_len = \
            RESP.unpack(raw)
        r = Response(status, msg_len, reserved, size, mtime, body_len,
                     version, magic)
        if magic != b"pf" or version != VERSION or msg_len > MSG_MAX:
            raise ProtocolError("bad response header %r" % raw)
        r.message = self.recv_exact(msg_len).decode("utf-8", "replace")
        return r

    def read_body(self, r, keep=False, sink=None, limit=None):
        """Read r.body_len bytes (or only `limit`), hashing them; keep them in
        r.body if keep, write them to sink if given. Raises ShortBody when the
        server closes before body_len bytes."""
        h = hashlib.sha256()
        kept = bytearray() if keep else None
        want = r.body_len if limit is None else min(limit, r.body_len)
        got = 0
        if self.buf:
            take = bytes(self.buf[:want])
            del self.buf[:len(take)]
            h.update(take)
            if kept is not None:
                kept += take
            if sink is not None:
                sink.write(take)
            got = len(take)
        mv = memoryview(bytearray(min(CHUNK, max(want - got, 1))))
        while got < want:
            n = self.sock.recv_into(mv, min(len(mv), want - got))
            if n == 0:
                r.received = got
                r.sha256 = h.hexdigest()
                if kept is not None:
                    r.body = bytes(kept)
                raise ShortBody(r, "connection closed after %d of %d body bytes"
                                % (got, r.body_len))
            h.update(mv[:n])
            if kept is not None:
                kept += mv[:n]
            if sink is not None:
                sink.write(mv[:n])
            got += n
        r.received = got
        r.sha256 = h.hexdigest()
        if kept is not None:
            r.body = bytes(kept)
        if self.sent_at is not None:
            r.elapsed = time.monotonic() - self.sent_at
        return r

    def read_response(self, keep=True, sink=None):
        r = self.read_header()
        return self.read_body(r, keep=keep, sink=sink)

    def request(self, data, keep=True, sink=None):
        self.send(data)
        return self.read_response(keep=keep, sink=sink)

    def get(self, path, offset=0, length=0, close=False, keep=True, sink=None):
        return self.request(get_request(path, offset, length, close), keep, sink)

    def stat(self, path, close=False):
        return self.request(stat_request(path, close))

    def closed_by_peer(self, timeout=5.0):
        """True when the server closes the connection within timeout with
        nothing more to say; False on timeout. Raises ProtocolError if bytes
        arrive instead."""
        if self.buf:
            raise ProtocolError("unexpected bytes: %r" % bytes(self.buf[:64]))
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(4096)
                except socket.timeout:
                    return False
                except ConnectionResetError:
                    return True
                if not data:
                    return True
                raise ProtocolError("unexpected bytes: %r" % data[:64])
        finally:
            self.sock.settimeout(self.timeout)


def connect(path, timeout=10.0):
    return Conn(path, timeout)


# ---------------------------------------------------------------- script ---

def _emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def _opt(args, name, default=None, conv=str):
    if name in args:
        i = args.index(name)
        val = args[i + 1]
        del args[i:i + 2]
        return conv(val)
    return default


def _flag(args, name):
    if name in args:
        args.remove(name)
        return True
    return False


def _cmd_requests(sockpath, op, args):
    offset = _opt(args, "--offset", 0, int)
    length = _opt(args, "--length", 0, int)
    stall = _opt(args, "--stall-after", None, int)
    close = _flag(args, "--close")
    timeout = _opt(args, "--timeout", 30.0, float)
    paths = [os.fsencode(a) for a in args]
    try:
        c = Conn(sockpath, timeout)
    except OSError as e:
        _emit({"error": "connect: %s" % e, "errno": e.errno})
        return 3
    with c:
        for i, p in enumerate(paths):
            last = i == len(paths) - 1
            if op == "get":
                c.send(get_request(p, offset, length, close and last))
            else:
                c.send(stat_request(p, close and last))
            try:
                r = c.read_header()
                if stall is not None and i == 0:
                    c.read_body(r, keep=False, limit=stall)
                    _emit({"stalled": r.received, "body_len": r.body_len})
                    time.sleep(3600)
                    return 0
                c.read_body(r, keep=False)
                d = r.as_dict()
                d["closed"] = False
                _emit(d)
            except ShortBody as e:
                d = e.resp.as_dict()
                d["closed"] = True
                _emit(d)
                return 0
            except (ProtocolError, OSError) as e:
                _emit({"error": "%s" % e, "errno": getattr(e, "errno", None)})
                return 0
    return 0


def _load_worker(sockpath, spec, requests, pipeline, seed, stats, lock):
    rng = random.Random(seed)
    ok = mismatch = errors = 0
    samples = []
    try:
        c = Conn(sockpath, 60.0)
    except OSError as e:
        with lock:
            stats["errors"] += requests
            stats["samples"].append("connect: %s" % e)
        return
    done = 0
    try:
        while done < requests:
            batch = [rng.choice(spec) for _ in range(min(pipeline, requests - done))]
            c.send(b"".join(get_request(e["path"]) for e in batch))
            for e in batch:
                r = c.read_response(keep=False)
                done += 1
                bad = r.problems()
                if r.name != e["status"]:
                    bad.append("status %s, expected %s" % (r.name, e["status"]))
                elif r.name == "OK":
                    if "sha256" in e and r.sha256 != e["sha256"]:
                        bad.append("body sha256 %s, expected %s" % (r.sha256, e["sha256"]))
                    if "size" in e and (r.size != e["size"] or r.received != e["size"]):
                        bad.append("size %d/%d, expected %d" % (r.size, r.received, e["size"]))
                if bad:
                    mismatch += 1
                    if len(samples) < 5:
                        samples.append("%s: %s" % (e["path"], "; ".join(bad)))
                else:
                    ok += 1
    except (ProtocolError, OSError) as ex:
        errors += requests - done
        samples.append("after %d requests: %s" % (done, ex))
    finally:
        c.close()
    with lock:
        stats["ok"] += ok
        stats["mismatch"] += mismatch
        stats["errors"] += errors
        stats["samples"].extend(samples[:5])


def _cmd_load(sockpath, args):
    spec = _opt(args, "--spec")
    if spec.startswith("@"):
        with open(spec[1:]) as f:
            spec = f.read()
    spec = json.loads(spec)
    conns = _opt(args, "--conns", 8, int)
    requests = _opt(args, "--requests", 100, int)
    pipeline = _opt(args, "--pipeline", 1, int)
    seed = _opt(args, "--seed", 1, int)
    stats = {"ok": 0, "mismatch": 0, "errors": 0, "samples": [],
             "requests": conns * requests}
    lock = threading.Lock()
    # Each thread connects before any starts sending, so the connections
    # really are concurrent.
    threads = [threading.Thread(target=_load_worker,
                                args=(sockpath, spec, requests, pipeline,
                                      seed * 1000 + i, stats, lock))
               for i in range(conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["seconds"] = round(time.monotonic() - t0, 3)
    _emit(stats)
    return 0


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 64
    sockpath, cmd, args = argv[1], argv[2], list(argv[3:])
    if cmd in ("get", "stat"):
        return _cmd_requests(sockpath, cmd, args)
    if cmd == "load":
        return _cmd_load(sockpath, args)
    sys.stderr.write("pfp.py: unknown command %r\n" % cmd)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))

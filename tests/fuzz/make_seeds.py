#!/usr/bin/python3
"""Write the seed corpora (tests/fuzz/corpus/NAME/seed-*): real requests and
responses (docs/protocol.md's examples), the malformed ones the system tests
send (tests/system/test_malformed.py), compat names and texts, paths, and
config/pipefiled.ini with the config unit tests' good and bad texts.
Run from the top of the tree; the output is committed, so this only needs
running again when the seeds should change. Deterministic."""

import os
import re
import struct
import sys

sys.path.insert(0, "tests/system")
import pfp  # noqa: E402  the independent Python codec the system tests use
from test_malformed import CASES  # noqa: E402

OUT = "tests/fuzz/corpus"


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def req(op, path, offset=0, length=0):
    if isinstance(path, str):
        path = path.encode()
    return struct.pack(">2sBBHQQ", b"PF", 1, op, len(path), offset, length) + path


def resp(status, msg=b"", size=0, mtime=0, body=0):
    return struct.pack(">2sBBHHQqQ", b"pf", 1, status, len(msg), 0, size, mtime,
                       body) + msg


# ---- PFP/1 requests: docs/protocol.md's examples, pipelined, malformed
put("request", "doc-get-range", req(1, "/hello.txt", 6, 5))
put("request", "doc-stat", req(2, "/hello.txt"))
put("request", "doc-get-close", req(0x81, "/hello.txt"))
put("request", "pipelined-3", req(1, "/a") + req(2, "/b/../c") + req(0x81, "d"))
put("request", "dotdot-escape", req(1, "/../etc/passwd"))
put("request", "path-4096", req(1, "a" * 4096))
put("request", "partial-header", req(1, "/hello.txt")[:15])
put("request", "partial-path", req(1, "/hello.txt")[:27])
for name, data in sorted(CASES.items()):
    put("request", "malformed-" + name, data)

# ---- PFP/1 responses: docs/protocol.md's, every status, broken ones
put("response", "doc-ok-get", resp(0, size=12, mtime=1732490028, body=5) + b"world")
put("response", "doc-ok-stat", resp(0, size=12, mtime=1732490028))
put("response", "doc-enoent", resp(1, b"ENOENT: no such file"))
for code in range(1, 10):
    put("response", "status-%d" % code, resp(code, b"refused: \x1b[31mred\x7f"))
put("response", "msg-1024", resp(2, "é".encode() * 512))
put("response", "msg-short", resp(2, b"x" * 40)[:50])
put("response", "header-short", resp(0)[:20])
put("response", "bad-reserved", resp(0)[:6] + b"\x00\x01" + resp(0)[8:])
put("response", "bad-status", resp(10, b"x"))
put("response", "body-on-error", resp(1, body=1))

# ---- compat: name frames' text (UTF-16LE) and files' bytes
u16 = lambda s: s.encode("utf-16-le")  # noqa: E731
put("compat", "name-ascii", u16("/hello.txt"))
put("compat", "name-accent", u16("a/é"))
put("compat", "name-pair", u16("中😀"))
put("compat", "name-lone-high", u16("a") + b"\x00\xd8")
put("compat", "name-lone-low", b"\x00\xdc" + u16("a"))
put("compat", "name-nul", u16("a\0b"))
put("compat", "name-odd", u16("ab") + b"c")
put("compat", "name-bom", u16("\ufeffx"))
put("compat", "greeting", u16("I am the one true server!"))
put("compat", "text-utf8-bom", b"\xef\xbb\xbfhello \xe2\x82\xac\n")
put("compat", "text-utf16le-bom", b"\xff\xfe" + u16("hi \U0001F600"))
put("compat", "text-utf16be-bom", b"\xfe\xff" + "hi \U0001F600".encode("utf-16-be"))
put("compat", "text-utf16-odd", b"\xff\xfe" + u16("x") + b"y")
put("compat", "text-bad-utf8",
    b"\xc0\xaf \xe0\x80\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xf0\x9f\x98 \x80\xff")

# ---- paths: the first byte picks the output size (0xff: the daemon's)
for name, p in [("root", b"/"), ("file", b"/hello.txt"), ("dots", b"/./a//b/../c/."),
                ("escape", b"/../x"), ("escape-late", b"a/b/../../../x"),
                ("nul", b"a\0b"), ("dotdot-name", b"/..a/b../...")]:
    put("path", name, b"\xff" + p)
put("path", "tight-3", b"\x03abc")
put("path", "tight-4", b"\x04abc/d/..")
put("path", "size-0", b"\x00a")
put("path", "size-1-root", b"\x01/")

# ---- access log: a 40-byte head (flags: 1 JSON, 2 GET, 4 STAT, 8 resolved;
# status in the high nibble; cap; numbers; user name length), the user name,
# the wire path
def record(flags, cap, user, path, named=True):
    head = struct.pack(">BHBqQQQQ", flags, cap, len(user), 1732490028123, 17,
                       4096, 52, 1000 << 32 | 1000)
    head = head[:39] + bytes([1 if named else 0])
    return head + user + path


for fmt, f in (("text", 0), ("json", 1)):
    put("accesslog", fmt + "-ok", record(f | 2 | 8, 32768, b"alice", b"/a b"))
    put("accesslog", fmt + "-hostile", record(
        f | 2 | 8 | 0x10, 32768, b"bob", b"/x\"\\[y]$`!\n\x1b\xe2\x80\xae\xc2\x85\xff/../z"))
    put("accesslog", fmt + "-cut", record(f | 2 | 8, 400, b"carol", b"/" + b"d/" * 300 + b"name"))
    put("accesslog", fmt + "-tiny", record(f | 4 | 0x20, 60, b"", b"/s", named=False))
    put("accesslog", fmt + "-abandoned", record(f | 0xa0, 32768, b"a b", b"/p"))
    put("accesslog", fmt + "-long", record(f | 2 | 8, 32768, b"dave", b"\x80" * 4096))

# ---- config: the shipped file and the unit tests' texts
with open("config/pipefiled.ini", "rb") as f:
    put("config", "pipefiled.ini", f.read())
src = open("tests/unit/test_config.c").read()
src = src.replace('" NO_USER "', "nosuchuser_pf").replace('" NO_GROUP "', "nosuchgroup_pf")
for i, m in enumerate(re.finditer(r'\{\s*"((?:[^"\\]|\\.)*)"', src)):
    text = m.group(1).encode().decode("unicode_escape").encode("latin-1")
    if text.startswith(b"[") or b"=" in text:
        put("config", "unit-%02d" % i, text)
put("config", "nul-byte", b"[server]\nworkers = 4\0\n")
put("config", "crlf", b"[server]\r\nworkers = 4\r\n")
put("config", "continuation", b"[server]\nroot = /srv\n  more\n")
put("config", "lists", b"[identity]\nallow_users = root, daemon, 1000\n"
    b"deny_groups = 0\nserve_root_clients = yes\n")
put("config", "long-line", b"[server]\nroot = /" + b"a" * 250 + b"\n")

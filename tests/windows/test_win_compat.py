"""The compat listener on Windows, under wine ([compat] pipe_name; the pipe
\\\\.\\pipe\\NAME): the .NET sample's framing spoken raw through pipecat.exe
(no mono for Windows here: the frames are built by hand, as the sample's
StreamString class writes them)."""

import struct

from conftest import PipeSock

GREETING = "I am the one true server!"


def frame(b):
    return struct.pack(">H", len(b)) + b


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            raise EOFError("got %d of %d bytes" % (len(buf), n))
        buf += c
    return buf


def read_frame(s):
    (n,) = struct.unpack(">H", read_exact(s, 2))
    return read_exact(s, n)


def fetch(daemon, name, file_name):
    s = PipeSock(daemon.wine, "\\\\.\\pipe\\" + name)
    try:
        assert read_frame(s).decode("utf-16-le") == GREETING
        s.sendall(frame(file_name.encode("utf-16-le")))
        return read_frame(s).decode("utf-16-le")
    finally:
        s.close()


def test_compat_pipe(daemon):
    daemon.put("hello.txt", "h\u00e9llo\n".encode())
    daemon.put("bom.txt", b"\xff\xfe" + "wide\n".encode("utf-16-le"))
    daemon.put("big.txt", b"a" * 32768)
    daemon.set("compat", "pipe_name", "pfcompat_t")
    daemon.start()
    assert "compat: the .NET sample's protocol (pipe name pfcompat_t) on " \
        "\\\\.\\pipe\\pfcompat_t" in daemon.stderr()
    assert fetch(daemon, "pfcompat_t", "hello.txt") == "h\u00e9llo\n"
    assert fetch(daemon, "pfcompat_t", "/bom.txt") == "wide\n"
    assert fetch(daemon, "pfcompat_t", "nope") == "pipefiled: ENOENT: no such file"
    assert fetch(daemon, "pfcompat_t", "big.txt") == (
        "pipefiled: ERANGE: the file's text does not fit in one frame (at most "
        "65534 bytes of UTF-16); the file has 32768 bytes, 65536 bytes as UTF-16")

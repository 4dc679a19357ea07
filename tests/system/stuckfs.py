#!/usr/bin/python3
"""stuckfs.py - a FUSE file system that stops answering, for
test_fault_stuck_fs.py.

usage: stuckfs.py MOUNTPOINT   (root; runs in the foreground, allow_other)

Two files, both 0644: "ok" (always answered) and "hang". Commands, one a
line on stdin, each answered "ok" on stdout:
  hold open    from now on a getattr, open or read of /hang is not answered
  hold read    only a read of /hang is not answered (open and fstat are)
  release      answer everything again (what was held is answered now)
Ending the process (SIGKILL) aborts the connection: anything still held
fails with ENOTCONN in the kernel; unmount with umount -l afterwards."""

import errno
import stat
import sys
import threading
import time

import fuse

fuse.fuse_python_api = (0, 2)

FILES = {"/ok": b"answered at once\n", "/hang": b"answered at last\n"}
NOW = time.time()
released = threading.Event()
released.set()
held = {"ops": ()}


def wait_if_held(path, op):
    """Block this request while path's op is held (the kernel waits)."""
    while path == "/hang" and op in held["ops"] and not released.is_set():
        released.wait(0.5)


class StuckFS(fuse.Fuse):
    def getattr(self, path):
        st = fuse.Stat()
        st.st_atime = st.st_mtime = st.st_ctime = NOW
        if path == "/":
            st.st_mode = stat.S_IFDIR | 0o755
            st.st_nlink = 2
            return st
        if path not in FILES:
            return -errno.ENOENT
        wait_if_held(path, "getattr")
        st.st_mode = stat.S_IFREG | 0o644
        st.st_nlink = 1
        st.st_size = len(FILES[path])
        return st

    def readdir(self, path, offset):
        for name in [".", ".."] + [f[1:] for f in FILES]:
            yield fuse.Direntry(name)

    def open(self, path, flags):
        if path not in FILES:
            return -errno.ENOENT
        wait_if_held(path, "open")
        return 0

    def read(self, path, size, offset):
        if path not in FILES:
            return -errno.ENOENT
        wait_if_held(path, "read")
        return FILES[path][offset:offset + size]


def commands():
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["hold"]:
            released.clear()
            held["ops"] = ("getattr", "open", "read") if words[1:] == ["open"] else ("read",)
        elif words[:1] == ["release"]:
            released.set()
        sys.stdout.write("ok\n")
        sys.stdout.flush()


def main():
    threading.Thread(target=commands, daemon=True).start()
    fs = StuckFS()
    fs.multithreaded = True
    # attr_timeout/entry_timeout 0: every open looks the file up again, so a
    # held getattr is met on the daemon's next open, not served from cache.
    fs.parse(args=[sys.argv[0], sys.argv[1], "-f", "-o",
                   "allow_other,attr_timeout=0,entry_timeout=0,negative_timeout=0"])
    fs.main()


if __name__ == "__main__":
    main()

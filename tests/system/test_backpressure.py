"""No line, no byte: when the access log cannot take records (its reader
stopped reading), requests wait instead of being served unlogged; once the
log moves again every answered request has its line; a request that waits
longer than send_timeout is refused with EBUSY saying why.

The access log is a FIFO whose reader the test controls: while it does not
read, the daemon's writer blocks and its 1 MiB queue fills (quickly, with
requests for long paths: each record holds the path twice)."""

import os
import select
import threading
import time

import pytest

import pfp
from conftest import wait_for
from test_disconnect import parse_records

# A path of 4,000 bytes that does not exist (ENOENT): components of 200 bytes.
LONG = ("missing/" + ("a" * 199 + "/") * 19 + "end").encode()
LOG_BUSY = "EBUSY: the access log is not keeping up; try again"


class FifoReader:
    """Reads the access log FIFO into memory while `reading` is set."""

    def __init__(self, path):
        os.mkfifo(path, 0o600)
        # Open before the daemon does: its non-blocking open of a FIFO
        # without a reader would fail (ENXIO).
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self.lock = threading.Lock()
        self.reading = threading.Event()
        self.reading.set()
        self.done = threading.Event()
        self.saw_eof = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            if not self.reading.wait(0.05):
                continue
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:  # no writer (yet, or any more)
                self.saw_eof = True
                time.sleep(0.02)
                continue
            with self.lock:
                self.data += chunk

    def pause(self):
        self.reading.clear()

    def resume(self):
        self.reading.set()

    def all_lines(self, timeout=10):
        """Every line, once the daemon has exited: read to the end of the
        FIFO first (up to a pipe's worth may still be in it)."""
        self.saw_eof = False  # only an end seen from now on counts
        self.reading.set()
        wait_for(lambda: self.saw_eof, timeout, "the end of the access log FIFO")
        return self.lines()

    def lines(self):
        with self.lock:
            data = bytes(self.data)
        return data.split(b"\n")[:-1]

    def close(self):
        self.done.set()
        self.thread.join(5)
        os.close(self.fd)


class Flooder(threading.Thread):
    """One connection asking, in batches, for LONG (ENOENT) and "f" (OK),
    reading every answer before the next batch; stops after a batch when
    told, or at an EBUSY answer."""

    def __init__(self, sock, longs=8, fs=2):
        super().__init__(daemon=True)
        self.sock = sock
        self.kinds = ["long"] * longs + ["f"] * fs
        self.blob = b"".join(pfp.get_request(LONG if k == "long" else "f") for k in self.kinds)
        self.answers = 0
        self.ok_f = 0
        self.busy = []
        self.error = None
        self.last = time.monotonic()
        self.halt = threading.Event()

    def start(self):
        self.last = time.monotonic()  # quiet is counted from the start
        super().start()

    def run(self):
        try:
            with pfp.Conn(self.sock, timeout=60) as c:
                while not self.halt.is_set():
                    c.send(self.blob)
                    for kind in self.kinds:
                        r = c.read_response()
                        self.answers += 1
                        self.last = time.monotonic()
                        if r.name == "EBUSY":
                            self.busy.append(r.message)
                            return
                        if kind == "f" and r.name == "OK":
                            self.ok_f += 1
        except (pfp.ProtocolError, OSError) as e:
            self.error = e


def stalled(flooders, quiet):
    """Whether no flooder got an answer for `quiet` seconds."""
    return time.monotonic() - max(f.last for f in flooders) > quiet


@pytest.fixture
def fifo_daemon(daemon):
    fifo = daemon.dir / "access.fifo"
    reader = FifoReader(fifo)
    daemon.set("log", "access_log", str(fifo))
    daemon.put("f", b"x" * 100)
    daemon.set("server", "workers", "2")
    yield daemon, reader
    reader.resume()  # the daemon drains its queue when it stops
    daemon.stop()
    reader.close()


@pytest.mark.pf_timeout(120)
def test_requests_wait_for_the_log_and_each_gets_its_line(fifo_daemon):
    daemon, reader = fifo_daemon
    daemon.set("server", "send_timeout", "60s")  # waits are not cut short here
    daemon.start()
    assert daemon.get("f").name == "OK"  # the FIFO works
    wait_for(lambda: len(reader.lines()) == 1, 10, "the first line")
    reader.pause()
    flooders = [Flooder(daemon.sock) for _ in range(4)]
    for f in flooders:
        f.start()
    # the queue fills and every connection waits (old code: served on,
    # records dropped, and no stall ever comes)
    wait_for(lambda: stalled(flooders, 2.0), 30,
             "requests to wait while the access log takes nothing")
    answered = sum(f.answers for f in flooders)
    time.sleep(1.0)
    assert sum(f.answers for f in flooders) == answered, "answers while the log was stuck"
    assert all(f.error is None and not f.busy for f in flooders)
    reader.resume()
    for f in flooders:
        f.halt.set()
    for f in flooders:
        f.join(60)
        assert not f.is_alive()
        assert f.error is None and not f.busy, (f.error, f.busy)
    assert sum(f.answers for f in flooders) > answered, "nothing served after the log moved"
    assert daemon.stop() == 0
    recs = parse_records(reader.all_lines())
    # every answer the clients got has its line, and no line is missing
    ok_f = [x for x in recs if (x["op"], x["path"], x["status"]) == ("GET", b"f", "OK")]
    assert len(ok_f) == 1 + sum(f.ok_f for f in flooders)
    assert len(recs) == 1 + sum(f.answers for f in flooders)
    assert "lost" not in daemon.stderr() and "dropped" not in daemon.stderr(), daemon.stderr()


@pytest.mark.pf_timeout(120)
def test_a_request_that_waits_past_send_timeout_gets_ebusy(fifo_daemon):
    daemon, reader = fifo_daemon
    daemon.set("server", "send_timeout", "1s")
    daemon.start()
    reader.pause()
    # long paths fill the queue fast; short ones then take the room a long
    # record does not fit in, which a request for "f" could still use
    flooders = [Flooder(daemon.sock, longs=16, fs=0), Flooder(daemon.sock, longs=0, fs=16)]
    for flooder in flooders:
        flooder.start()
        wait_for(lambda: stalled([flooder], 0.3) or flooder.busy, 30,
                 "the flood to fill the access log")
    # the log is stuck: a new request waits send_timeout, then is refused.
    # (Should a little room be left after all, the requests that use it are
    # served, and logged, until it is gone.)
    r, took, served, closed = daemon.get_until_refused("f", 200)
    assert (r.name, r.message) == ("EBUSY", LOG_BUSY), r
    assert 0.9 <= took < 10, took
    assert closed
    for flooder in flooders:
        flooder.join(30)
        assert flooder.busy == [LOG_BUSY], (flooder.busy, flooder.error)
    # the log moves again: requests are served (and logged) at once
    reader.resume()
    with daemon.conn(timeout=30) as c:
        t0 = time.monotonic()
        assert c.get("f").name == "OK"
        assert time.monotonic() - t0 < 5
    assert daemon.stop() == 0
    recs = parse_records(reader.all_lines())
    ok_f = [x for x in recs if (x["op"], x["path"], x["status"]) == ("GET", b"f", "OK")]
    assert len(ok_f) == served + flooders[1].ok_f + 1


@pytest.mark.pf_timeout(120)
def test_abandoned_requests_wait_for_room_in_the_log(fifo_daemon):
    """A client hangs up mid-transfer, with requests pipelined behind, while
    the access log is stuck: the connection keeps what it read until the log
    has room (within send_timeout), so each request still gets its line."""
    from test_disconnect import ABANDONED, unread_by_peer
    daemon, reader = fifo_daemon
    data = os.urandom(8 << 20)
    daemon.put("big", data)
    # The kernel's own send buffer: with send_buffer the 8 MiB would fit.
    daemon.set("server", "send_buffer", "0")
    daemon.set("server", "send_timeout", "20s")
    daemon.start()
    c = daemon.conn(timeout=30)
    c.send(pfp.get_request("big") + pfp.get_request("f") * 5)
    r = c.read_header()
    c.read_body(r, keep=False, limit=100000)
    wait_for(lambda: unread_by_peer(c) == 0, 10, "the daemon to read the requests")
    reader.pause()
    # long paths fill the queue, then short ones its last bytes
    flooders = [Flooder(daemon.sock), Flooder(daemon.sock, longs=0, fs=16)]
    for f in flooders:
        f.start()
        wait_for(lambda: stalled([f], 2.0), 30, "the flood to fill the access log")
    c.close()  # the 5 abandoned requests' lines find no room now
    time.sleep(1.0)
    reader.resume()
    for f in flooders:
        f.halt.set()
    for f in flooders:
        f.join(60)
        assert f.error is None and not f.busy, (f.error, f.busy)
    assert daemon.stop() == 0
    recs = [x for x in parse_records(reader.all_lines()) if x["conn"] == 1]
    assert [(x["path"], x["status"]) for x in recs][0] == (b"big", "OK"), recs
    assert 100000 <= recs[0]["bytes"] < len(data)
    assert [x["path"] for x in recs[1:]] == [b"f"] * 5, recs
    assert all(x["status"] in ABANDONED for x in recs[1:]), recs

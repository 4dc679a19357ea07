"""GET with offset/length: body_len = min(length or infinity, size - offset);
offset == size is OK with an empty body; offset > size is ERANGE."""


import pytest

from conftest import link_big

DATA = bytes((i * 31 + 7) & 0xFF for i in range(10000))


@pytest.mark.parametrize("offset,length", [
    (0, 0), (0, 1), (1, 0), (1, 1), (4095, 2), (9999, 0), (9999, 1), (9999, 100),
    (5000, 5000), (5000, 5001), (0, 10000), (0, 20000), (123, 4567),
    (0, 2**64 - 1), (1, 2**64 - 1),
])
def test_range(daemon, offset, length):
    daemon.put("f", DATA)
    daemon.start()
    r = daemon.get("f", offset=offset, length=length)
    end = len(DATA) if length == 0 else min(len(DATA), offset + length)
    assert r.problems() == []
    assert r.name == "OK"
    assert r.size == len(DATA)
    assert r.body_len == end - offset
    assert r.body == DATA[offset:end]


def test_offset_equal_to_size_is_empty_ok(daemon):
    daemon.put("f", DATA)
    daemon.put("empty", b"")
    daemon.start()
    for name, size in (("f", len(DATA)), ("empty", 0)):
        for length in (0, 1, 100):
            r = daemon.get(name, offset=size, length=length)
            assert (r.name, r.size, r.body_len, r.body) == ("OK", size, 0, b""), (name, length)


@pytest.mark.parametrize("offset", [len(DATA) + 1, len(DATA) + 4096, 2**63, 2**64 - 1])
def test_offset_past_end_is_erange(daemon, offset):
    daemon.put("f", DATA)
    daemon.start()
    with daemon.conn() as c:
        r = c.get("f", offset=offset)
        assert r.problems() == []
        assert r.name == "ERANGE"
        assert r.message.startswith("ERANGE: ")
        assert (r.size, r.mtime, r.body_len) == (0, 0, 0)
        # the connection stays usable after ERANGE
        r = c.get("f", offset=1, length=2)
        assert (r.name, r.body) == ("OK", DATA[1:3])


def test_erange_on_empty_file(daemon):
    daemon.put("empty", b"")
    daemon.start()
    assert daemon.get("empty", offset=1).name == "ERANGE"


@pytest.mark.pf_timeout(240)
def test_range_in_big_file(daemon, bigfile):
    name, size, digest = link_big(bigfile, daemon)
    daemon.start()
    path = bigfile[0]
    with open(path, "rb") as f:
        for offset, length in ((size - 4097, 0), (200 << 20, 1 << 20), ((1 << 28) - 3, 10),
                               (size - 1, 5), (size, 0)):
            f.seek(offset)
            want = f.read(length if length else size)
            with daemon.conn(timeout=60) as c:
                r = c.get(name, offset=offset, length=length)
            assert (r.name, r.size) == ("OK", size)
            assert r.body == want, (offset, length)
    assert daemon.get(name, offset=size + 1).name == "ERANGE"


@pytest.mark.pf_timeout(240)
def test_cli_range(daemon, runner, workdir):
    daemon.put("f", DATA)
    daemon.start()
    p = runner.cli(None, "-s", daemon.sock, "get", "f", "--offset", "100", "--length", "50")
    assert p.returncode == 0, p.stderr
    assert p.stdout == DATA[100:150]
    out = workdir / "tail.out"
    p = runner.cli(None, "-s", daemon.sock, "get", "f", "--offset", "9000", "-o", out)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == DATA[9000:]
    p = runner.cli(None, "-s", daemon.sock, "get", "f", "--offset", str(len(DATA)))
    assert (p.returncode, p.stdout) == (0, b"")
    p = runner.cli(None, "-s", daemon.sock, "get", "f", "--offset", str(len(DATA) + 1))
    assert p.returncode == 10 + 9, p.stderr
    assert p.stderr.startswith(b"pipefile: f: "), p.stderr
    assert p.stdout == b""

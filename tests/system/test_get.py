"""Byte-exact GET of empty, 1-byte, 4 KiB and >= 256 MiB files, through the
Python client and through the pipefile CLI (-o and standard output)."""

import hashlib
import os
import subprocess

import pytest

from conftest import link_big, sha256

SMALL = {
    "empty": b"",
    "one": b"\xa5",
    "four_k": bytes((i * 7 + 3) & 0xFF for i in range(4096)),
}


def put_small(d):
    for name, data in SMALL.items():
        d.put(name, data)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_get_small_python_client(daemon, name):
    put_small(daemon)
    daemon.start()
    data = SMALL[name]
    st = os.stat(daemon.root / name)
    r = daemon.get(name)
    assert r.problems() == []
    assert r.name == "OK"
    assert r.message == ""
    assert r.size == len(data)
    assert r.body_len == len(data)
    assert r.mtime == int(st.st_mtime)
    assert r.body == data
    assert r.sha256 == sha256(data)


@pytest.mark.pf_timeout(240)
def test_get_big_python_client(daemon, bigfile):
    name, size, digest = link_big(bigfile, daemon)
    daemon.start()
    with daemon.conn(timeout=60) as c:
        r = c.get(name, keep=False)  # hashed while streaming, never held
    assert r.problems() == []
    assert (r.name, r.size, r.body_len, r.received) == ("OK", size, size, size)
    assert r.sha256 == digest


@pytest.mark.parametrize("name", sorted(SMALL))
def test_get_small_cli_output_file(daemon, runner, workdir, name):
    put_small(daemon)
    daemon.start()
    out = workdir / ("out-" + name)
    p = runner.cli(None, "-s", daemon.sock, "get", name, "-o", out)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == SMALL[name]
    # no temporary file left next to the output
    assert sorted(x.name for x in workdir.iterdir() if x.name.startswith(("out-", ".out-"))) == [out.name]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_get_small_cli_stdout(daemon, runner, name):
    put_small(daemon)
    daemon.start()
    p = runner.cli(None, "-s", daemon.sock, "get", name)
    assert p.returncode == 0, p.stderr
    assert p.stdout == SMALL[name]
    assert p.stderr == b""


@pytest.mark.pf_timeout(240)
def test_get_big_cli_output_file(daemon, runner, workdir, bigfile):
    name, size, digest = link_big(bigfile, daemon)
    daemon.start()
    out = workdir / "big.out"
    p = runner.cli(None, "-s", daemon.sock, "get", name, "-o", out, timeout=180)
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size == size
    h = hashlib.sha256()
    with open(out, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    assert h.hexdigest() == digest


@pytest.mark.pf_timeout(240)
def test_get_big_cli_stdout(daemon, runner, bigfile):
    name, size, digest = link_big(bigfile, daemon)
    daemon.start()
    argv = [str(runner.tools / "pipefile"), "-s", str(daemon.sock), "get", name]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    runner.procs.append(p)
    h = hashlib.sha256()
    n = 0
    for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
        h.update(chunk)
        n += len(chunk)
    assert p.wait(timeout=60) == 0, p.stderr.read()
    assert n == size
    assert h.hexdigest() == digest


def test_many_requests_one_connection(daemon):
    put_small(daemon)
    daemon.start()
    with daemon.conn() as c:
        for _ in range(50):
            for name, data in SMALL.items():
                r = c.get(name)
                assert (r.name, r.body) == ("OK", data)


@pytest.mark.parametrize("wire", ["/four_k", "//four_k", "/./four_k", "sub/../four_k",
                                  "./sub/./../four_k", "sub/x/../../four_k"])
def test_path_forms_stay_inside_root(daemon, wire):
    """A leading "/" means the root; "." and inner ".." are taken lexically."""
    put_small(daemon)
    daemon.mkdir("sub")
    daemon.start()
    r = daemon.get(wire)
    assert (r.name, r.body) == ("OK", SMALL["four_k"])


def test_file_in_subdirectory(daemon):
    daemon.put("a/b/c/deep.txt", b"deep\n")
    daemon.start()
    for wire in ("a/b/c/deep.txt", "/a/b/c/deep.txt", "a//b///c/deep.txt"):
        r = daemon.get(wire)
        assert (r.name, r.body) == ("OK", b"deep\n"), wire


def test_name_with_spaces_and_utf8(daemon):
    name = "r\u00e9sum\u00e9 file \u2603.txt"
    daemon.put(name, b"snow")
    daemon.start()
    r = daemon.get(name)
    assert (r.name, r.body) == ("OK", b"snow")

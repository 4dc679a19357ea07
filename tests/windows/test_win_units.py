"""The Windows unit tests (cmocka, built by `make windows` as
$(BUILD)/win/tests/test_*.exe) under wine: each must exit 0."""

import pytest

from conftest import BUILD, REPO

UNITS = sorted((BUILD / "tests").glob("test_*.exe"))


@pytest.mark.parametrize("exe", UNITS or [None], ids=[p.stem for p in UNITS] or ["none-built"])
@pytest.mark.pf_timeout(120)
def test_unit(wine, exe):
    assert exe is not None, "no unit test programs in %s: run `make windows`" % (BUILD / "tests")
    # from the checkout's top, as `make unit` runs the Linux ones (some read
    # config/ files by relative path)
    r = wine.run(exe, timeout=100, cwd=REPO)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, "%s exited %d:\n%s" % (exe.name, r.returncode, out[-4000:])

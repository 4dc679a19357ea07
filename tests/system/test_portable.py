"""scripts/check-portable.sh, which `make test` runs: the daemon's logic
files pass it, and each kind of platform leak in a logic file fails it with
a line naming the file, the line and the reason."""

import subprocess

from conftest import REPO

SCRIPT = str(REPO / "scripts" / "check-portable.sh")


def run(*dirs):
    return subprocess.run(["sh", SCRIPT, *map(str, dirs)], capture_output=True,
                          text=True, timeout=60)


def test_the_daemon_logic_files_are_portable():
    p = run(REPO / "daemon")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == ""


def test_each_leak_is_named(workdir):
    (workdir / "logic.c").write_text(
        "/* a comment may say uid_t and <unistd.h> */\n"
        "#include <errno.h>\n"
        "#include <unistd.h>\n"
        "#include <sys/socket.h>\n"
        "#ifdef _WIN32\n"
        "#endif\n"
        "static uid_t owner;\n"
        "static const char *s = \"pid_t in a string\";\n")
    # Platform back ends and platform headers may do all of that.
    (workdir / "thing_linux.c").write_text("#include <unistd.h>\nuid_t u;\n")
    (workdir / "linux").mkdir()
    (workdir / "linux" / "thing_os.h").write_text("#include <sys/types.h>\n")
    p = run(workdir)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines == [
        "%s/logic.c:3: POSIX-only header <unistd.h>" % workdir,
        "%s/logic.c:4: POSIX-only header <sys/socket.h>" % workdir,
        "%s/logic.c:5: platform conditional on _WIN32" % workdir,
        "%s/logic.c:7: POSIX-only type uid_t" % workdir,
    ], p.stdout

#!/bin/sh
# Install the Debian packages pipefiled needs, and only those that are missing.
#
#   sh scripts/deps.sh build   compiler, make, pkg-config, libuv, inih
#   sh scripts/deps.sh test    build + cmocka, python3, pytest and the tools
#                              the system tests run (systemd's offline tools)
#   sh scripts/deps.sh deb     build + dpkg-dev and debhelper (`make deb`)
#   sh scripts/deps.sh windows build + mingw-w64 and dpkg-dev (`make windows`)
#   sh scripts/deps.sh bench   build + nginx-light, python3, setpriv (`make bench`)
#
# Quiet when nothing is missing. As root: `apt-get update` once, then one
# `apt-get install` of the missing packages. Not root: prints the one command
# to run and exits 1. Exits non-zero with a message when apt fails.
set -u

BUILD_PKGS="gcc libc6-dev make pkg-config libuv1-dev libinih-dev"
# util-linux: setpriv (system tests switch uid/gid/groups); e2fsprogs
# (mkfs.ext2, debugfs) and mount (losetup, mount): the EIO test's failing loop
# disk (in every Debian base, but removable). The tests read /proc themselves
# (no ps, pkill). test_units.py: systemd (systemd-analyze verify/security,
# systemd-sysusers, systemd-tmpfiles; no running systemd needed), procps
# (/bin/kill, pipefiled.service's ExecReload, which verify wants to find) and
# logrotate (parses and runs pipefiled.logrotate; util-linux's unshare gives it
# a private /var/log). The man pages: groff-base renders them (warnings are
# errors), man-db's man(1) finds them and is what systemd-analyze verify runs
# for a unit's Documentation= pages.
# `make deb`: dpkg-buildpackage (dpkg-dev) and dh (debhelper); build-essential
# is what dpkg-checkbuilddeps always asks for.
DEB_PKGS="$BUILD_PKGS build-essential dpkg-dev debhelper"
# test_deb.py builds the package (DEB_PKGS) and reads it with dpkg-deb.
# test_boot.py: debootstrap makes a Debian 12 root and systemd-container's
# systemd-nspawn boots it.
# `make windows`: the mingw-w64 cross compiler, and dpkg-dev's dpkg-source to
# unpack libuv's and inih's Debian source packages (scripts/win-deps.sh).
# The Windows suite runs what it builds under wine (wine64's loader).
WIN_PKGS="$BUILD_PKGS gcc-mingw-w64-x86-64 dpkg-dev"
# test_remote_ssh.py: a real sshd (openssh-server; openssh-client's ssh
# forwards the socket). test_compat.py: a C# client of the .NET sample's
# protocol, compiled with mcs and run with mono.
TEST_PKGS="$DEB_PKGS openssh-server openssh-client mono-mcs mono-runtime gcc-mingw-w64-x86-64 wine wine64 libcmocka-dev python3 python3-pytest util-linux e2fsprogs mount systemd procps logrotate groff-base man-db systemd-container debootstrap"
# `make memcheck` runs the daemon under valgrind (`make tsan` needs only
# gcc's libtsan, which gcc brings).
TEST_PKGS="$TEST_PKGS valgrind"
# tests/fuzz (make fuzz-regress, in make test): clang's libFuzzer, ASan and
# UBSan (their runtimes are libclang-rt-14-dev).
TEST_PKGS="$TEST_PKGS clang libclang-rt-14-dev"
# test_bench.py runs nginx (nginx-light) beside pipefiled under bench/pfbench.
TEST_PKGS="$TEST_PKGS nginx-light"
# test_send_buffer.py reads a socket's send buffer with ss (iproute2).
TEST_PKGS="$TEST_PKGS iproute2"
# test_fault_stuck_fs.py mounts a FUSE file system that stops answering
# (tests/system/stuckfs.py: python3-fuse; fuse3 for /dev/fuse's tools).
TEST_PKGS="$TEST_PKGS python3-fuse fuse3"
# `make bench`: nginx (nginx-light) to compare with, python3 for bench/run.py,
# setpriv (util-linux) to run the load as another uid.
BENCH_PKGS="$BUILD_PKGS nginx-light python3 util-linux"

me="scripts/deps.sh"

case "${1:-}" in
build) want=$BUILD_PKGS ;;
test) want=$TEST_PKGS ;;
deb) want=$DEB_PKGS ;;
windows) want=$WIN_PKGS ;;
bench) want=$BENCH_PKGS ;;
*)
	echo "usage: sh $me build|test|deb|windows|bench" >&2
	exit 2
	;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "$me: no dpkg-query: not a Debian system; install the equivalents of:" >&2
	echo "  $want" >&2
	echo "$me: going on; the build fails later if any is missing." >&2
	exit 0
fi

missing=
for p in $want; do
	# "install ok installed" only when the package is fully installed
	# (not removed with config left, not half-configured).
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || st=
	case "$st" in
	*" ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done
missing=${missing# }
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "$me: missing Debian packages: $missing" >&2
	echo "$me: run this, then try again:" >&2
	echo "  sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing'" >&2
	exit 1
fi

echo "$me: installing missing Debian packages: $missing"
# -o DPkg::Lock::Timeout: wait for another apt/dpkg (e.g. unattended-upgrades)
# instead of failing at once.
if ! apt-get -o DPkg::Lock::Timeout=300 update </dev/null; then
	echo "$me: 'apt-get update' failed (see above); cannot install: $missing" >&2
	exit 1
fi
# shellcheck disable=SC2086 # word splitting of $missing is intended
if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $missing </dev/null; then
	echo "$me: 'apt-get install $missing' failed (see above)" >&2
	exit 1
fi

# Make sure apt really left every package installed.
for p in $missing; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || st=
	case "$st" in
	*" ok installed") ;;
	*)
		echo "$me: $p is still not installed after apt-get install" >&2
		exit 1
		;;
	esac
done
echo "$me: installed: $missing"

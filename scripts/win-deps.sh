#!/bin/sh
# Build libuv, inih and cmocka for Windows (mingw-w64, static) from Debian's
# source packages, once, and print the directory that holds them:
#
#   DIR/include/{uv.h,uv/,ini.h,cmocka.h}
#   DIR/lib/{libuv.a,libinih.a,libcmocka.a}  DIR/versions
#
# The sources come from `apt-get source` with a private apt state under the
# cache directory: its deb-src entries are derived from this machine's own
# deb entries (/etc/apt/sources.list and sources.list.d), adding the suite
# after this one (Debian sometimes keeps only the newer source of a small
# package such as inih). The version wanted is the one the Linux build uses
# (the installed -dev package); when that source is gone, the newest one the
# lists hold.
#
# Cached in $PIPEFILED_CACHE (default /var/cache/pipefiled-build) under a key
# made of this script, the cross compiler's version and the Linux packages'
# versions, so a change to any of them builds afresh and a stale build is
# never used. Messages go to stderr; only the directory goes to stdout.
set -eu

me="scripts/win-deps.sh"
CC=x86_64-w64-mingw32-gcc
AR=x86_64-w64-mingw32-ar
cache=${PIPEFILED_CACHE:-/var/cache/pipefiled-build}

say() { echo "$me: $*" >&2; }
die() {
	say "$*"
	exit 1
}

command -v $CC >/dev/null 2>&1 || die "no $CC (Debian gcc-mingw-w64-x86-64)"
command -v dpkg-source >/dev/null 2>&1 || die "no dpkg-source (Debian dpkg-dev)"

installed() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }
uv_want=$(installed libuv1-dev)
ini_want=$(installed libinih-dev)
cm_want=$(installed libcmocka-dev)
key=$( (
	cat "$0"
	$CC --version | head -1
	echo "$uv_want $ini_want $cm_want"
) | sha256sum | cut -c1-16)
out=$cache/win-deps-$key
if [ -f "$out/versions" ]; then
	echo "$out"
	exit 0
fi

say "building libuv and inih for Windows into $out (once)"
mkdir -p "$cache"
work=$(mktemp -d "$cache/win-deps-tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# deb-src twins of the machine's deb entries, one-line and deb822 styles.
apt=$work/apt
mkdir -p "$apt/parts" "$apt/lists/partial"
this=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
case "$this" in
bullseye) next=bookworm ;;
bookworm) next=trixie ;;
trixie) next=forky ;;
*) next= ;;
esac
{
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f"
	done
} | grep -v -- '-security\|-updates' >"$apt/parts/derived.list" || true
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	# Keep the stanzas whose suites are the release itself (no -security,
	# -updates: their sources are in the release's or newer), as deb-src.
	awk -v next_suite="$next" '
		BEGIN { RS = ""; ORS = "\n\n" }
		/Types:[^\n]*deb/ && !/Suites:[^\n]*-security/ {
			gsub(/Types:[^\n]*/, "Types: deb-src")
			if (next_suite != "") {
				n = split($0, ls, "\n"); s = ""
				for (i = 1; i <= n; i++) {
					l = ls[i]
					if (l ~ /^Suites:/) {
						gsub(/[^ ]*-updates/, "", l)
						l = l " " next_suite
					}
					s = s l "\n"
				}
				$0 = s
			}
			print
		}' "$f" >"$apt/parts/$(basename "$f")"
done
if [ -n "$next" ] && [ -s "$apt/parts/derived.list" ]; then
	sed "s/[[:space:]]$this[[:space:]]/ $next /" "$apt/parts/derived.list" >>"$apt/parts/derived.list.next"
	cat "$apt/parts/derived.list.next" >>"$apt/parts/derived.list"
	rm -f "$apt/parts/derived.list.next"
fi
A="-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$apt/parts -o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache -o APT::Sandbox::User=root"
mkdir -p "$apt/cache/archives/partial"
# shellcheck disable=SC2086 # $A is a list of options
apt-get $A update >&2 || die "apt-get update of the derived deb-src lists failed"

# fetch PKG WANT DIR: unpack source package PKG (version WANT if the
# archive still has it, else the newest listed) into DIR; print the version.
fetch() {
	pkg=$1 want=$2 dir=$3
	# shellcheck disable=SC2086
	versions=$(apt-cache $A showsrc "$pkg" | sed -n 's/^Version: //p' | sort -V -r -u)
	[ -n "$versions" ] || die "no source package $pkg in the derived lists"
	for v in $want $versions; do
		rm -rf "$work/dl" && mkdir -p "$work/dl"
		# shellcheck disable=SC2086
		if (cd "$work/dl" && apt-get $A source --download-only "$pkg=$v" >/dev/null 2>&1); then
			dpkg-source -x "$work/dl/${pkg}_${v#*:}.dsc" "$dir" >/dev/null 2>&1 ||
				die "dpkg-source -x of $pkg $v failed"
			echo "$v"
			return 0
		fi
		say "$pkg $v: not in the archive, trying another version"
	done
	die "no version of source package $pkg could be downloaded"
}
uv_v=$(fetch libuv1 "$uv_want" "$work/uv")
ini_v=$(fetch libinih "$ini_want" "$work/inih")
cm_v=$(fetch cmocka "$cm_want" "$work/cmocka")
say "libuv1 $uv_v, libinih $ini_v, cmocka $cm_v"

# libuv's own file list for Windows (its CMakeLists.txt), built with its
# own defines; its warnings are not ours (no -Werror).
mkdir -p "$work/out/include" "$work/out/lib" "$work/obj"
UVCF="-O2 -g -DWIN32_LEAN_AND_MEAN -D_WIN32_WINNT=0x0602 -I$work/uv/include -I$work/uv/src"
srcs=$(sed -n '/^set(uv_sources/,/)/p; /^if(WIN32)/,/^else/p' "$work/uv/CMakeLists.txt" |
	grep -o 'src/[a-z0-9/_-]*\.c' | sort -u)
objs=
for s in $srcs; do
	o=$work/obj/uv-$(echo "$s" | tr / _).o
	# shellcheck disable=SC2086
	$CC $UVCF -c "$work/uv/$s" -o "$o" 2>"$o.log" || {
		cat "$o.log" >&2
		die "compiling libuv's $s failed"
	}
	objs="$objs $o"
done
# shellcheck disable=SC2086
$AR rcs "$work/out/lib/libuv.a" $objs
cp -r "$work/uv/include/." "$work/out/include/"

# inih with its header's defaults, as Debian's libinih.so is built: the
# Linux build compiles our code against that header with no INI_* defines,
# and so does the Windows one.
$CC -O2 -g -c "$work/inih/ini.c" -o "$work/obj/ini.o"
$AR rcs "$work/out/lib/libinih.a" "$work/obj/ini.o"
cp "$work/inih/ini.h" "$work/out/include/"

# cmocka, for the unit tests run under wine: one file; the config.h its
# cmake would write, for what mingw-w64's C library has.
mkdir -p "$work/cmcfg"
for d in ASSERT_H INTTYPES_H IO_H MALLOC_H MEMORY_H SETJMP_H SIGNAL_H \
	STDARG_H STDDEF_H STDINT_H STDIO_H STDLIB_H STRINGS_H STRING_H SYS_STAT_H \
	SYS_TYPES_H TIME_H UNISTD_H STRUCT_TIMESPEC CALLOC EXIT FPRINTF SNPRINTF \
	VSNPRINTF FREE LONGJMP MALLOC MEMCPY MEMSET PRINTF SETJMP SIGNAL STRCMP \
	STRCPY GCC_THREAD_LOCAL_STORAGE; do
	echo "#define HAVE_$d 1"
done >"$work/cmcfg/config.h"
echo "#define WORDS_SIZEOF_VOID_P 8" >>"$work/cmcfg/config.h"
$CC -O2 -g -I"$work/cmcfg" -I"$work/cmocka/include" -c "$work/cmocka/src/cmocka.c" \
	-o "$work/obj/cmocka.o" || die "compiling cmocka failed"
$AR rcs "$work/out/lib/libcmocka.a" "$work/obj/cmocka.o"
cp "$work/cmocka/include/cmocka.h" "$work/out/include/"

printf 'libuv1 %s\nlibinih %s\ncmocka %s\n' "$uv_v" "$ini_v" "$cm_v" >"$work/out/versions"
rm -rf "$out"
mv "$work/out" "$out"
echo "$out"

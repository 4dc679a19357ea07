#!/bin/sh
# Make a wine prefix for the Windows test suite (tests/windows) once, cache
# it, and print its path.
#
#   sh scripts/wine-prefix.sh       prints e.g.
#   /var/cache/pipefiled-test/wineprefix-8.0~repack-4-1a2b3c4d5e6f
#
# `wineboot --init` takes ~15 s here; the tests copy the cached prefix into a
# private dir per session (cp -a of ~700 MB: ~2 s) so runs never share state.
# The cache key is wine64's Debian version and this script's own hash: a new
# wine or a changed recipe makes a new prefix, a stale one is never used
# (older ones are removed once an hour old). The
# prefix is built in a temporary dir next to its final place and renamed
# there only once wineboot has finished and its wineserver has exited, so a
# half-made prefix is never found; a lock makes parallel callers wait for
# one build.
#
# Mono and Gecko are not installed (WINEDLLOVERRIDES): headless, nothing
# here needs .NET or a browser engine, and their installers would ask.
# Env: PIPEFILED_WINE_CACHE (default /var/cache/pipefiled-test, or
# ~/.cache/pipefiled-test for a user who cannot write there), WINE64
# (default /usr/lib/wine/wine64), WINESERVER (default wineserver).
set -eu

me="scripts/wine-prefix.sh"
cache=${PIPEFILED_WINE_CACHE:-/var/cache/pipefiled-test}
if [ -z "${PIPEFILED_WINE_CACHE:-}" ]; then
	if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
		cache=${XDG_CACHE_HOME:-$HOME/.cache}/pipefiled-test
	fi
fi
wine64=${WINE64:-/usr/lib/wine/wine64}
wineserver=${WINESERVER:-wineserver}

if [ ! -x "$wine64" ]; then
	echo "$me: $wine64 not found: install Debian's wine and wine64" >&2
	exit 1
fi
if ! command -v "$wineserver" >/dev/null 2>&1; then
	echo "$me: $wineserver not found: install Debian's wine" >&2
	exit 1
fi

ver=$(dpkg-query -W -f='${Version}' wine64 2>/dev/null) || ver=
[ -n "$ver" ] || ver=$("$wine64" --version 2>/dev/null) || ver=unknown
hash=$(sha256sum "$0" | cut -c1-12)
# Only characters safe in a file name: the version may hold ':' (epoch).
key=$(printf '%s-%s' "$ver" "$hash" | tr -c 'A-Za-z0-9.~+_-' '_')
final="$cache/wineprefix-$key"

# Older keys' prefixes (another wine, another recipe) are never used again;
# those made in the last hour are left for a session of the old checkout
# that may be copying one right now.
prune() {
	find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'wineprefix-*' \
		! -name 'wineprefix-tmp.*' ! -path "$final" -mmin +60 \
		-exec rm -rf {} + 2>/dev/null || true
}

if [ -f "$final/system.reg" ]; then
	prune
	echo "$final"
	exit 0
fi

mkdir -p "$cache"
# One builder at a time: flock(1) on a lock file in the cache dir (released
# when this shell exits, however it exits).
exec 9>"$cache/wineprefix.lock"
if command -v flock >/dev/null 2>&1; then
	flock -w 300 9 || {
		echo "$me: waited 300 s for $cache/wineprefix.lock" >&2
		exit 1
	}
fi
if [ -f "$final/system.reg" ]; then # another caller made it meanwhile
	echo "$final"
	exit 0
fi

tmp=$(mktemp -d "$cache/wineprefix-tmp.XXXXXX")
cleanup() {
	# The temporary prefix's wineserver, if wineboot left one behind.
	WINEPREFIX="$tmp" "$wineserver" -k >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

echo "$me: making a wine prefix (about 15 s) in $final" >&2
# wineboot creates the prefix itself: it must not exist yet.
rmdir "$tmp"
log="$cache/wineprefix-$key.log"
if ! WINEPREFIX="$tmp" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
	timeout 300 "$wine64" wineboot --init >"$log" 2>&1; then
	echo "$me: wineboot --init failed; its output:" >&2
	cat "$log" >&2
	exit 1
fi
# wineboot returns before the prefix's wineserver has saved the registry
# and exited: wait for it (bounded), else the copy would miss the registry.
if ! WINEPREFIX="$tmp" timeout 120 "$wineserver" -w; then
	echo "$me: the prefix's wineserver did not exit within 120 s" >&2
	exit 1
fi
if [ ! -f "$tmp/system.reg" ]; then
	echo "$me: wineboot made no $tmp/system.reg; its output:" >&2
	cat "$log" >&2
	exit 1
fi
rm -f "$log"

prune

mv -T "$tmp" "$final"
trap - EXIT
echo "$final"

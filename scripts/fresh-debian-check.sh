#!/usr/bin/env bash
# Prove that the checkout builds and tests on a fresh Debian machine: a
# debootstrap chroot with only what a new machine of ours has (gcc, make, git,
# python3) and empty apt lists, so `make test` must install everything else
# itself, from `apt-get update` on.
#
# usage (as root): scripts/fresh-debian-check.sh [-d DIR] [-s SUITE] [-t SECS] [-r] [-k] [--] [CMD...]
#   -d DIR    pristine base chroot (default /work/chroot), built on first use
#             and reused after; every run works on a throw-away copy, DIR.run
#   -s SUITE  Debian suite for a new base (default bookworm)
#   -t SECS   time limit for CMD (default 5400, CI's)
#   -r        rebuild the base even if it exists
#   -k        keep DIR.run after the check (it is replaced by the next run)
#   CMD       run in the copy of the checkout, /root/pipefiled in the chroot,
#             as root with no stdin (default: bash .ci/run, i.e. CI=true make test,
#             then make asan)
#
# The checkout copied in is the current work tree: tracked files plus
# untracked files that .gitignore does not ignore (so no build/).
# The mirror is the one this machine's apt uses, read from its apt sources.
# Everything mounted is unmounted on exit, failure and Ctrl-C included.
set -euo pipefail

BASE=/work/chroot
SUITE=bookworm
LIMIT=5400
REBUILD=0
KEEP=0
# What a new machine of ours has that this project uses. pkg-config is not
# among them (the machine image has only pkgconf-bin); gcc comes without its
# recommends, so not even libc6-dev: scripts/deps.sh must bring it.
NEW_MACHINE_PKGS="gcc make git python3"
MARK=.pipefiled-fresh-base

me=fresh-debian-check
say() { printf '%s: %s\n' "$me" "$*" >&2; }
die() {
	say "$*"
	exit 1
}

while getopts d:s:t:rkh opt; do
	case $opt in
	d) BASE=$OPTARG ;;
	s) SUITE=$OPTARG ;;
	t) LIMIT=$OPTARG ;;
	r) REBUILD=1 ;;
	k) KEEP=1 ;;
	h)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -gt 0 ]; then CMD=("$@"); else CMD=(bash .ci/run); fi

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, mount)"
for t in debootstrap chroot mount umount findmnt git tar timeout; do
	command -v "$t" >/dev/null || die "needs $t"
done
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
BASE=$(realpath -m "$BASE")
RUN=$BASE.run
case "$BASE" in / | /bin* | /boot* | /dev* | /etc* | /lib* | /proc* | /sbin* | /sys* | /usr* | /var* | "$REPO"*)
	die "refusing $BASE as a chroot dir" ;;
esac

# The first URI of an enabled Debian source for $SUITE in this machine's apt
# configuration (deb822 *.sources or one-line *.list).
mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk -v suite="$SUITE" '
			function flush() {
				if (uri != "" && deb && has && enabled) { print uri; found = 1; exit }
				uri = ""; deb = 0; has = 0; enabled = 1
			}
			BEGIN { enabled = 1 }
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has = 1 }
			tolower($1) == "enabled:" { enabled = (tolower($2) != "no") }
			END { if (!found) flush() }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk -v suite="$SUITE" '
			$1 != "deb" { next }
			{ i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } }
			$(i + 1) == suite { print $i; exit }
		' "$f"
	done
}

# --- mounts -----------------------------------------------------------------
MOUNTED=()
mnt() { # mnt ROOT: ROOT itself (bind), proc, sys, dev (bind), dev/pts (bind), tmpfs on dev/shm and tmp
	local r=$1
	# On a real machine / is a mount point; tests that make a private mount
	# namespace (unshare --propagation private) need that, so bind the chroot
	# onto itself, private so nothing below it reaches the host.
	mount --bind "$r" "$r" && MOUNTED+=("$r")
	mount --make-private "$r"
	mount -t proc proc "$r/proc" && MOUNTED+=("$r/proc")
	mount -t sysfs sysfs "$r/sys" && MOUNTED+=("$r/sys")
	# The host's cgroup hierarchy, as a booted machine has it: systemd-nspawn
	# (test_boot.py) will not start a container without one.
	if mountpoint -q /sys/fs/cgroup; then
		mount --rbind /sys/fs/cgroup "$r/sys/fs/cgroup" && MOUNTED+=("$r/sys/fs/cgroup")
		mount --make-rslave "$r/sys/fs/cgroup"
	fi
	mount --bind /dev "$r/dev" && MOUNTED+=("$r/dev")
	# Never let a mount below propagate back to the host's /dev.
	mount --make-private "$r/dev"
	mount --bind /dev/pts "$r/dev/pts" && MOUNTED+=("$r/dev/pts")
	mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm" && MOUNTED+=("$r/dev/shm")
	mount -t tmpfs -o mode=1777 tmpfs "$r/tmp" && MOUNTED+=("$r/tmp")
}
# End what still runs inside a chroot (a daemon a failed test left behind,
# say): only processes whose root directory is that chroot.
kill_inside() {
	local r=$1 p root sig
	for sig in TERM KILL; do
		for p in /proc/[0-9]*; do
			root=$(readlink "$p/root" 2>/dev/null) || continue
			case "$root" in "$r" | "$r"/*) kill -s "$sig" "${p#/proc/}" 2>/dev/null || true ;; esac
		done
		if [ $sig = TERM ]; then sleep 1; fi
	done
	return 0
}
unmnt() {
	local i m
	for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
		m=${MOUNTED[i]}
		umount -R "$m" 2>/dev/null || umount -l "$m" || say "could not unmount $m"
	done
	MOUNTED=()
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e # clean up all the way, whatever fails
	[ -n "${ACTIVE:-}" ] && kill_inside "$ACTIVE"
	unmnt
	if [ -n "${ACTIVE:-}" ] && [ "$ACTIVE" = "$RUN" ] && [ "$KEEP" = 0 ]; then
		wipe "$RUN"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# rm -rf a chroot, but never while anything is mounted below it.
wipe() {
	local d=$1
	[ -e "$d" ] || return 0
	if findmnt -rn -o TARGET | awk -v d="$d" '$0 == d || index($0, d "/") == 1 { f = 1 } END { exit !f }'; then
		die "$d still has mounts below it; not removing it"
	fi
	rm -rf --one-file-system "$d"
}

in_chroot() { # in_chroot ROOT CMD...: clean environment, no stdin
	local r=$1
	shift
	chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@" </dev/null
}

# --- the base: minbase + what a new machine has, empty apt lists -----------
build_base() {
	local m t0 tmp=$BASE.tmp f copied=0
	m=$(mirror | head -n 1)
	[ -n "$m" ] || die "no enabled Debian source for '$SUITE' in /etc/apt/sources.list{,.d/*}"
	say "building the base at $BASE from this machine's Debian mirror ($SUITE)"
	wipe "$tmp"
	t0=$(date +%s)
	debootstrap --variant=minbase "$SUITE" "$tmp" "$m" >"$BASE.debootstrap.log" 2>&1 ||
		die "debootstrap failed; see $BASE.debootstrap.log"
	say "debootstrap took $(($(date +%s) - t0)) s"
	# The same apt sources as this machine (updates and security too), when
	# they are in files of their own; debootstrap's one line otherwise.
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
		if [ ! -r "$f" ] || ! grep -qF "$m" "$f"; then continue; fi
		cp "$f" "$tmp$f"
		copied=1
	done
	if [ $copied = 1 ] && [ ! -e /etc/apt/sources.list ]; then rm -f "$tmp/etc/apt/sources.list"; fi
	cp -L /etc/resolv.conf "$tmp/etc/resolv.conf"
	ACTIVE=$tmp
	mnt "$tmp"
	in_chroot "$tmp" sh -c "apt-get -q update && DEBIAN_FRONTEND=noninteractive \
		apt-get -q install -y --no-install-recommends $NEW_MACHINE_PKGS" \
		>>"$BASE.debootstrap.log" 2>&1 || die "installing $NEW_MACHINE_PKGS failed; see $BASE.debootstrap.log"
	in_chroot "$tmp" sh -c 'apt-get clean && rm -rf /var/lib/apt/lists/*'
	kill_inside "$tmp"
	unmnt
	ACTIVE=
	printf 'suite=%s\npackages=%s\nbuilt=%s\n' "$SUITE" "$NEW_MACHINE_PKGS" "$(date -u +%FT%TZ)" >"$tmp/$MARK"
	wipe "$BASE"
	mv "$tmp" "$BASE"
	say "base ready in $(($(date +%s) - t0)) s"
}

if [ "$REBUILD" = 1 ] || [ ! -e "$BASE/$MARK" ]; then
	if [ -e "$BASE" ] && [ ! -e "$BASE/$MARK" ] && [ -n "$(ls -A "$BASE")" ]; then
		die "$BASE exists but was not built by this script ($MARK missing); remove it or pick another -d"
	fi
	build_base
fi

# --- the run: a throw-away copy of the base with the current tree ----------
wipe "$RUN"
say "copying the base to $RUN"
cp -a "$BASE" "$RUN"
rm -rf "$RUN/var/lib/apt/lists"/* # empty, so `apt-get update` must run
cp -L /etc/resolv.conf "$RUN/etc/resolv.conf"
mkdir -p "$RUN/root/pipefiled"
(
	cd "$REPO"
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
		done |
		tar -c --null --no-recursion -T - -f -
) | tar -x -C "$RUN/root/pipefiled" -f -
say "copied $(find "$RUN/root/pipefiled" -type f | wc -l) files of $REPO"

ACTIVE=$RUN
mnt "$RUN"
say "running in the chroot, in /root/pipefiled: ${CMD[*]}"
t0=$(date +%s)
set +e
# shellcheck disable=SC2016 # $@ is expanded by the shell inside the chroot
timeout -k 30 "$LIMIT" chroot "$RUN" /usr/bin/env -i \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
	sh -c 'cd /root/pipefiled && exec "$@"' sh "${CMD[@]}" </dev/null
rc=$?
set -e
secs=$(($(date +%s) - t0))
if [ $rc = 0 ]; then
	say "PASS: '${CMD[*]}' exited 0 in $secs s"
elif [ $rc = 124 ]; then
	say "FAIL: '${CMD[*]}' did not finish within $LIMIT s"
else
	say "FAIL: '${CMD[*]}' exited $rc after $secs s"
fi
[ "$KEEP" = 1 ] && say "kept $RUN (enter it with: chroot $RUN)"
exit $rc

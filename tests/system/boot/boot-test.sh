#!/bin/sh
# boot-test.sh - the checks test_boot.py runs inside a booted Debian 12
# container, as the oneshot pipefiled-boot-test.service: pipefiled as the
# admin installed it (make install, pipefiled.socket enabled), driven by
# systemctl and used by real users with the installed pipefile CLI.
#
# One line per check in /var/lib/pipefiled-boot/results ("ok - ..." or
# "FAIL - ..."); the exit status is the number of failed checks, which the
# unit's ExecStopPost hands to `systemctl exit`, so it becomes nspawn's.
# shellcheck disable=SC2317 # functions called through check()
set -u
OUT=/var/lib/pipefiled-boot
RES=$OUT/results
SOCK=/run/pipefiled/pipefiled.sock
SRV=/srv/pipefiled
INI=/etc/pipefiled/pipefiled.ini
mkdir -p $OUT
: >$RES
fails=0

ok() { echo "ok - $*" | tee -a $RES; }
bad() {
	echo "FAIL - $*" | tee -a $RES
	fails=$((fails + 1))
}
check() { # check DESCRIPTION CMD...
	d=$1
	shift
	if "$@"; then ok "$d"; else bad "$d"; fi
}
# as USER CMD...: a real login's identity (uid, gid, groups from /etc/group).
as() {
	u=$1
	shift
	timeout 20 setpriv --reuid="$u" --regid="$u" --init-groups "$@"
}
# get_rc USER PATH: pipefile's exit status (0 served, 12 EACCES, 18 EPERM).
get_rc() {
	as "$1" pipefile get "$2" >/dev/null 2>&1
	echo $?
}
main_pid() { systemctl show -p MainPID --value pipefiled.service; }
wait_until() { # wait_until SECS CMD...
	n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# --- the served files and two real users --------------------------------------
useradd -M -s /bin/sh alice
useradd -M -s /bin/sh bob
groupadd team
usermod -a -G team alice
printf 'alice secret\n' >$SRV/alice.txt
printf 'bob secret\n' >$SRV/bob.txt
printf 'team notes\n' >$SRV/team.txt
# Asked for only after the log rotation.
printf 'after rotation\n' >$SRV/after-rotation.txt
chown alice:alice $SRV/alice.txt
chown bob:bob $SRV/bob.txt
chown root:team $SRV/team.txt
chmod 0600 $SRV/alice.txt $SRV/bob.txt
chmod 0640 $SRV/team.txt
head -c 64M /dev/urandom >$SRV/big.bin
chmod 0644 $SRV/big.bin
# The access log as a file, so logrotate has something to rotate. The
# daemon reads the config when the first connection starts it.
sed -i 's|^access_log *=.*|access_log = /var/log/pipefiled/access.log|' $INI

# --- socket activation ----------------------------------------------------------
check "pipefiled.socket is listening at boot" systemctl is-active --quiet pipefiled.socket
check "the socket exists before the daemon" test -S $SOCK
check "pipefiled.service is not running before the first connection" \
	sh -c '! systemctl is-active --quiet pipefiled.service'
got=$(as alice pipefile get alice.txt 2>&1)
check "first connection: alice gets her 0600 file (got: $got)" test "$got" = "alice secret"
check "the first connection started pipefiled.service" systemctl is-active --quiet pipefiled.service

# --- identity ---------------------------------------------------------------------
got=$(as bob pipefile get bob.txt 2>&1)
check "bob gets his 0600 file (got: $got)" test "$got" = "bob secret"
rc=$(get_rc alice bob.txt)
check "alice cannot read bob's 0600 file (pipefile exit $rc, want 12)" test "$rc" = 12
rc=$(get_rc bob alice.txt)
check "bob cannot read alice's 0600 file (pipefile exit $rc, want 12)" test "$rc" = 12
got=$(as alice pipefile get team.txt 2>&1)
check "alice reads a root:team 0640 file through her supplementary group (got: $got)" \
	test "$got" = "team notes"
rc=$(get_rc bob team.txt)
check "bob, not in team, cannot (pipefile exit $rc, want 12)" test "$rc" = 12

# --- least privilege: the daemon's own /proc status -------------------------------
pid=$(main_pid)
st=/proc/$pid/status
u=$(id -u pipefiled)
g=$(id -g pipefiled)
check "runs as pipefiled (uid $u): $(grep '^Uid:' "$st" | tr '\t' ' ')" \
	grep -qP "^Uid:\t$u\t$u\t$u\t$u$" "$st"
check "group pipefiled (gid $g): $(grep '^Gid:' "$st" | tr '\t' ' ')" \
	grep -qP "^Gid:\t$g\t$g\t$g\t$g$" "$st"
# Bits 6 and 7: CAP_SETGID and CAP_SETUID, nothing else.
check "CapEff is exactly setuid+setgid: $(grep '^CapEff:' "$st" | tr '\t' ' ')" \
	grep -qP '^CapEff:\t00000000000000c0$' "$st"
check "CapBnd is exactly setuid+setgid: $(grep '^CapBnd:' "$st" | tr '\t' ' ')" \
	grep -qP '^CapBnd:\t00000000000000c0$' "$st"
check "NoNewPrivs 1" grep -qP '^NoNewPrivs:\t1$' "$st"
check "Seccomp 2 (filter)" grep -qP '^Seccomp:\t2$' "$st"
# Root in the daemon's mount namespace, so only a read-only mount (not
# file permissions) can stop the write. -r: the daemon's root directory too,
# which is not the namespace's root when nspawn runs in a chroot.
err=$(nsenter -t "$pid" -m -r touch $SRV/written-by-daemon 2>&1)
ro_for_daemon() {
	test ! -e "$SRV/written-by-daemon" && case "$err" in *"Read-only file system"*) true ;; *) false ;; esac
}
check "the served root is read-only for the daemon ($err)" ro_for_daemon

# --- systemctl reload: a good config is applied, a bad one refused ------------------
sed -i 's|^deny_users *=.*|deny_users = bob|' $INI
systemctl reload pipefiled.service
check "reload with a good config: same process ($(main_pid), was $pid)" test "$(main_pid)" = "$pid"
rc=$(get_rc bob bob.txt)
check "after the reload bob is denied (pipefile exit $rc, want 18)" test "$rc" = 18
cp $INI $OUT/good.ini
sed -i -e 's|^deny_users *=.*|deny_users =|' -e 's|^workers *=.*|workers = banana|' $INI
systemctl reload pipefiled.service
check "reload with a bad config: still active" systemctl is-active --quiet pipefiled.service
check "reload with a bad config: same process" test "$(main_pid)" = "$pid"
rc=$(get_rc bob bob.txt)
check "the bad config was refused: bob still denied (pipefile exit $rc, want 18)" test "$rc" = 18
rc=$(get_rc alice alice.txt)
check "and alice still served (pipefile exit $rc)" test "$rc" = 0
sed -i -e 's|^deny_users *=.*|deny_users =|' $OUT/good.ini
cp $OUT/good.ini $INI
systemctl reload pipefiled.service
rc=$(get_rc bob bob.txt)
check "reload back: bob served again (pipefile exit $rc)" test "$rc" = 0

# --- logrotate, and the daemon reopens its access log --------------------------------
LOG=/var/log/pipefiled/access.log
check "the access log is written ($LOG)" wait_until 5 grep -q bob.txt $LOG
logrotate -f /etc/logrotate.d/pipefiled
check "logrotate rotated it to access.log.1" grep -q bob.txt $LOG.1
as alice pipefile get after-rotation.txt >/dev/null 2>&1
check "after the rotation the daemon logs to the new access.log" wait_until 5 grep -q after-rotation.txt $LOG
check "and not to the rotated one" sh -c "! grep -q after-rotation.txt $LOG.1"

# --- systemctl stop while a transfer runs ----------------------------------------------
rm -f $OUT/big.out $OUT/big.rc
(
	as alice pipefile get big.bin
	echo $? >$OUT/big.rc
) | (
	sleep 3
	cat >$OUT/big.out
) &
sleep 1
check "a transfer is in flight when the stop begins" sh -c "test ! -e $OUT/big.rc"
t0=$(date +%s)
systemctl stop pipefiled.service
t1=$(date +%s)
wait
check "systemctl stop returned in $((t1 - t0)) s (< 30, TimeoutStopSec)" test $((t1 - t0)) -lt 30
res=$(systemctl show -p Result --value pipefiled.service)
check "the daemon stopped cleanly (Result=$res)" test "$res" = success
check "the transfer in flight completed (pipefile exit $(cat $OUT/big.rc 2>/dev/null))" \
	test "$(cat $OUT/big.rc 2>/dev/null)" = 0
check "with every byte" cmp -s $SRV/big.bin $OUT/big.out
check "the socket outlives the daemon" test -S $SOCK
got=$(as bob pipefile get bob.txt 2>&1)
check "the next connection starts it again (got: $got)" test "$got" = "bob secret"
check "pipefiled.service active again" systemctl is-active --quiet pipefiled.service
rm -f $SRV/big.bin $OUT/big.out

echo "$fails failed" | tee -a $RES
exit $fails

#!/bin/sh
# bench/run.sh - start pipefiled (identity switch and access log on) and
# measure it against pfbench's baseline server on the same files.
# Usage: sh bench/run.sh [BUILD_DIR] [SECONDS]. Needs root for the switch.
set -eu
build=${1:-build}
secs=${2:-2}
dir=$(mktemp -d /tmp/pfbench.XXXXXX)
chmod 755 "$dir"
mkdir "$dir/root"
head -c 4096 /dev/urandom >"$dir/root/small"
head -c $((512 * 1024 * 1024)) /dev/zero >"$dir/root/big"
chmod 644 "$dir/root/small" "$dir/root/big"
cat >"$dir/pipefiled.ini" <<INI
[server]
socket = $dir/pipefiled.sock
root = $dir/root
[log]
access_log = ${PFBENCH_ACCESS_LOG:-$dir/access.log}
INI
"$build/pipefiled" -c "$dir/pipefiled.ini" 2>"$dir/pipefiled.err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0
while [ ! -S "$dir/pipefiled.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# The client runs as an ordinary uid, so every request really switches
# identity (a root client would too, but with capabilities kept).
run=""
mkdir "$dir/client"
if [ "$(id -u)" -eq 0 ]; then
  run="setpriv --reuid 61500 --regid 61500 --clear-groups"
  chown 61500:61500 "$dir/client"
fi
echo "pipefiled $(sed -n 's/.*ready: //p' "$dir/pipefiled.err")"
$run "$build/pfbench" "$dir/pipefiled.sock" "$dir/root" "$dir/client/baseline.sock" "$secs"
echo "access log lines: $(wc -l <"$dir/access.log")"

#!/bin/sh
# Run the libFuzzer harnesses (tests/fuzz/README.md); `make fuzz` and
# `make fuzz-regress` call this.
#
#   sh tests/fuzz/run.sh regress BINDIR   each harness over its corpus once
#   sh tests/fuzz/run.sh fuzz BINDIR      each harness for FUZZ_S seconds,
#                                         new inputs merged into its corpus
#
# BINDIR holds the harnesses built with ASan+UBSan (fuzz_<name>). Exits 1 if
# any input crashes, leaks, times out or breaks a property.
set -u

mode=${1:-}
bin=${2:-}
here=tests/fuzz
FUZZ_S=${FUZZ_S:-60}
# Every harness, with the longest input worth trying: a little past what
# its parser can be handed (a whole request with a 4096-byte path; a
# response header and its longest message; a file name frame of 4096
# UTF-16 units; a config of some lines; an access-log record's head, user
# name and longest path).
harnesses="request:8400 response:1100 compat:8200 path:4200 config:4096 accesslog:4400"

case "$mode" in
regress | fuzz) ;;
*)
	echo "usage: sh $here/run.sh regress|fuzz BINDIR" >&2
	exit 2
	;;
esac

# Files in a directory (file names are libFuzzer's hashes or ours).
count() {
	find "$1" -type f | wc -l
}

failed=0
for h in $harnesses; do
	name=${h%%:*}
	max_len=${h#*:}
	exe=$bin/fuzz_$name
	corpus=$here/corpus/$name
	dict=
	[ -f "$here/$name.dict" ] && dict="-dict=$here/$name.dict"
	out=$bin/$name.$mode.log
	if [ "$mode" = regress ]; then
		# Given files, a libFuzzer binary runs each once and stops at the
		# first that fails.
		n=$(count "$corpus")
		# A failing input is copied to $bin/artifacts/regress/, not to
		# the working directory.
		mkdir -p "$bin/artifacts/regress"
		if "$exe" -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix="$bin/artifacts/regress/$name-" \
			"$corpus"/* >"$out" 2>&1; then
			echo "fuzz-regress: $name: $n inputs, none fails"
		else
			echo "fuzz-regress: $name: FAILED (log: $out):"
			grep -E 'ERROR|SUMMARY|property does not hold|Running:' "$out" | tail -5
			failed=1
		fi
		continue
	fi
	# Fuzz into a scratch directory (the committed corpus is read, never
	# written there), then merge into the corpus only the inputs that reach
	# new code. Crashes go to $bin/artifacts/NAME/ (this run's only).
	new=$bin/new/$name
	art=$bin/artifacts/$name
	rm -rf "$new" "$art"
	mkdir -p "$new" "$art"
	before=$(count "$corpus")
	# shellcheck disable=SC2086 # $dict is one word or none
	nice -n 10 "$exe" -max_len="$max_len" -max_total_time="$FUZZ_S" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$art/" $dict "$new" "$corpus" >"$out" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
	crashes=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' \
		-o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
	nice -n 10 "$exe" -merge=1 -max_len="$max_len" -artifact_prefix="$art/" \
		"$corpus" "$new" \
		>"$bin/$name.merge.log" 2>&1 || failed=1
	after=$(count "$corpus")
	echo "fuzz: $name: ${FUZZ_S} s, ${execs:-?} executions, $crashes crashes," \
		"corpus $before -> $after inputs (log: $out)"
	if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
		grep -E 'ERROR|SUMMARY|property does not hold' "$out" | head -5
		echo "fuzz: $name: the failing inputs are in $art/"
		failed=1
	fi
done
exit $failed

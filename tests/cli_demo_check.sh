#!/bin/sh
# CTest for one `tmo demo` scenario: runs it at a fifth of its durations and passes only if
# tmo exits 0 (a sanitizer report makes it exit non-zero) and the JSON line for the scenario
# says "pass": true.
# Usage: cli_demo_check.sh TMO_BINARY SCENARIO
set -u
out=$("$1" demo --json --scale 0.2 "$2")
status=$?
printf '%s\n' "$out"
[ "$status" -eq 0 ] || { echo "tmo demo exited with $status" >&2; exit 1; }
printf '%s\n' "$out" | grep -Eq "\"scenario\": *\"$2\".*\"pass\": *true" || {
	echo "no passing line for $2" >&2
	exit 1
}

#!/usr/bin/env bash
# Runs kiln's fuzzers one after another: scripts/fuzz.sh [DURATION]
# (each fuzzer for DURATION, default 5m; scripts/test.sh runs 5s each).
# FuzzApply needs root (its jail is a tmpfs). A crasher is written to the
# package's testdata/fuzz/FUZZER/ directory: commit it with the fix, and
# it runs in every `go test` from then on. The corpus grown meanwhile
# stays in Go's cache (go env GOCACHE)/fuzz and seeds the next run.
# FUZZ_PARALLEL sets the workers per fuzzer (default 1: the machine is
# shared); FUZZ_LOG names a directory for the full output.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
duration=${1:-5m}
log=${FUZZ_LOG:-$(mktemp -d)}
mkdir -p "$log"
fuzzers=(
	"./internal/archive FuzzApply"
	"./internal/image FuzzParseReference"
	"./internal/image FuzzParseManifest"
	"./internal/image FuzzParseConfig"
	"./internal/dockerfile FuzzExpand"
)
status=0
printf '%-20s %-22s %12s %12s  %s\n' fuzzer package execs interesting result
for f in "${fuzzers[@]}"; do
	read -r pkg name <<<"$f"
	out=$log/$name.log
	if go test -run='^$' -fuzz="^$name\$" -fuzztime="$duration" -fuzzminimizetime=5s \
		-parallel="${FUZZ_PARALLEL:-1}" "$pkg" >"$out" 2>&1; then
		result=ok
	elif grep -q 'context deadline exceeded' "$out" && ! grep -q -e 'Failing input written' -e 'panic:' "$out"; then
		# Go 1.26's fuzz coordinator reports its own -fuzztime deadline as a
		# failure now and then (golang/go#75804, fixed in Go 1.27): no input
		# failed, nothing was written.
		result="ok (go#75804)"
	else
		result=FAIL
		status=1
	fi
	grep -q -- "--- SKIP" "$out" && result=skipped
	last=$(grep -o 'execs: [0-9]*.*new interesting: [0-9]*' "$out" | tail -1)
	execs=$(sed -n 's/execs: \([0-9]*\).*/\1/p' <<<"$last")
	interesting=$(sed -n 's/.*new interesting: \([0-9]*\)/\1/p' <<<"$last")
	printf '%-20s %-22s %12s %12s  %s\n' "$name" "$pkg" "${execs:-0}" "${interesting:-0}" "$result"
	if [ "$result" = FAIL ]; then
		grep -A20 -- '--- FAIL' "$out" | head -40
	fi
done
echo "logs in $log"
exit $status

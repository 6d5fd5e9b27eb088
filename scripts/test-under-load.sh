#!/usr/bin/env bash
# test-under-load.sh: run `make test` RUNS times in a row (default 5) with LOAD CPU-bound
# processes (default 2) running beside it, as a CI machine or a laptop busy with other work
# would have; stop at the first failure. The timing logic is proven with fake clocks; what this
# checks is that the real-time tests keep margins wide enough for a loaded machine.
#
#   scripts/test-under-load.sh              # make test-under-load
#   RUNS=2 LOAD=3 scripts/test-under-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
load=${LOAD:-2}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq "$load"); do
	# A busy loop in its own process: a CPU-bound neighbour.
	(while :; do :; done) &
	pids+=($!)
done
for i in $(seq "$runs"); do
	start=$(date +%s)
	echo "== run $i of $runs, with $load CPU-bound processes beside it (load $(cut -d' ' -f1-3 /proc/loadavg))"
	if ! make --no-print-directory test; then
		echo "test-under-load: run $i failed after $(($(date +%s) - start)) s" >&2
		exit 1
	fi
	echo "== run $i passed in $(($(date +%s) - start)) s"
done
echo "test-under-load: $runs runs passed"

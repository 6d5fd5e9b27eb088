#!/usr/bin/env bash
# soak.sh: the rate window over a long run. Two processes of one run at --rate 7 (Kommo's limit)
# against kommo-sim enforcing 7/s (any excess is a 429) with API faults on, for SOAK_MINUTES
# (default 60): the export is sized to last that long, and a second run of the same scope joins
# for the second half. Prints the maximum number of requests the simulator saw in any 1-second
# window (the promise: never more than 7), the narrowest span of 8 requests in a row (how much
# room the promise had: over 1000 ms), the 429s, duplicates and the rate spent.
#
#   scripts/soak.sh                       # make soak
#   SOAK_MINUTES=10 scripts/soak.sh
#   TRACE=1 KEEP=1 scripts/soak.sh        # and why the narrowest windows were narrow: every request
#                                         # traced (--log-level debug), scripts/rate-trace.py
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${DATABASE_URL:-} ]]; then
	exec scripts/with-pg.sh --database-url "$0" "$@"
fi
minutes=${SOAK_MINUTES:-60}
rate=7
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[[ -n ${KEEP:-} ]] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/" ./cmd/kommo-import ./cmd/kommo-sim ./internal/benchgen
export KOMMO_CHANNEL_SECRET=soak-secret
scope=soak_$(date +%s)
n=$((rate * 60 * minutes))
"$tmp/benchgen" -messages $((n / 2)) -conversations $((n / 16)) -seed 11 >"$tmp/a.jsonl"
# Another export: its own msgids (with the same ones, the second run had nothing to send).
"$tmp/benchgen" -messages $((n / 2)) -conversations $((n / 16)) -seed 12 -prefix soak-b >"$tmp/b.jsonl"
"$tmp/kommo-sim" --addr 127.0.0.1:0 --addr-file "$tmp/addr" --scope-id "$scope" --ledger "$tmp/ledger.jsonl" \
	--rate "$rate" --retry-after 5s --seed 11 --faults 500=0.02,503=0.01,accept-500=0.01,accept-drop=0.005,hang=0.005 \
	--hang 3s --history-delay 300ms --verbose >/dev/null 2>"$tmp/sim.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s $tmp/addr ]] && break; sleep 0.1; done
api=$(cat "$tmp/addr")
trace=()
[[ -n ${TRACE:-} ]] && trace=(--log-level debug)
run() { "$tmp/kommo-import" run --source "jsonl:$tmp/$1.jsonl" --api-url "$api" --scope-id "$scope" --run "soak-$1" \
	--rate "$rate" --progress log --progress-interval 60s --json "${trace[@]}" >"$tmp/$1.$2.json" 2>"$tmp/$1.$2.log"; }
echo "soak: $minutes minutes at --rate $rate, $n messages in two runs of one scope, two processes each half of the time"
start=$(date +%s)
run a 1 &
pids+=($!)
run a 2 &
pids+=($!)
sleep $((minutes * 30))
run b 1 &
pids+=($!)
wait "${pids[@]:1}" 2>/dev/null || true
curl -fsS "$api/_sim/stats" >"$tmp/stats.json"
python3 - "$tmp/stats.json" "$tmp/ledger.jsonl" "$rate" "$tmp/sim.log" <<'PY'
import json, math, re, sys
from datetime import datetime
stats = json.load(open(sys.argv[1])); rate = float(sys.argv[3])
times = sorted(json.loads(l)["arrived_at"] for l in open(sys.argv[2]))
print(f"accepted {len(times)} messages; requests {stats['requests']}; max in any 1 s {stats['max_requests_in_any_1s']} (--rate {rate:g}); "
      f"429s {stats['rate_limited']}; duplicates {stats['duplicates']}; faults {sum(stats['faults'].values())}")
# kommo-sim --verbose logs every request's arrival: the narrowest span of
# rate+1 requests in a row says by how much the window held (under 1000 ms: it did not).
def ts(s):
    whole, _, frac = s.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float("0." + (frac or "0"))
arr = sorted(ts(m.group(1)) for m in (re.search(r"arrived=(\S+)", l) for l in open(sys.argv[4]) if "msg=request" in l) if m)
k = math.floor(rate) + 1
spans = sorted(arr[i] - arr[i - k + 1] for i in range(k - 1, len(arr)))
if spans:
    print(f"narrowest {k} requests in a row (every request, as kommo-sim saw them arrive): "
          + ", ".join(f"{s * 1000:.1f}" for s in spans[:5]) + " ms")
PY
if [[ -n ${TRACE:-} ]]; then
	python3 scripts/rate-trace.py "$tmp/sim.log" "$tmp"/a.1.log "$tmp"/a.2.log "$tmp"/b.1.log --rate "$rate"
fi
echo "soak: $(( ($(date +%s) - start) / 60 )) minutes"

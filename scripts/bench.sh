#!/usr/bin/env bash
# End-to-end import benchmark with the real binaries: MESSAGES messages in
# CONVERSATIONS conversations, staged into PostgreSQL and sent to kommo-sim with
# no rate limit and no latency, every message checkpointed. Prints staging
# rows/s, messages/s, HTTP requests per message and the importer's peak RSS.
#
#   scripts/bench.sh                              # 100,000 messages
#   MESSAGES=1000000 CONVERSATIONS=20000 scripts/bench.sh
#
# Uses $DATABASE_URL when set (the bench creates and drops its own tables' rows
# only through a fresh run name, but prefer a scratch database); otherwise a
# throwaway cluster from scripts/with-pg.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${DATABASE_URL:-} ]]; then
	exec scripts/with-pg.sh --database-url "$0" "$@"
fi
messages=${MESSAGES:-100000}
convs=${CONVERSATIONS:-2000}
workers=${WORKERS:-16}
tmp=$(mktemp -d)
sim_pid=
cleanup() {
	[[ -n $sim_pid ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	[[ -n ${KEEP:-} ]] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/" ./cmd/kommo-import ./cmd/kommo-sim ./internal/benchgen
"$tmp/benchgen" -messages "$messages" -conversations "$convs" >"$tmp/export.jsonl"
echo "input: $messages messages, $convs conversations, $(du -m "$tmp/export.jsonl" | cut -f1) MB"

export KOMMO_CHANNEL_SECRET=bench-secret KOMMO_SCOPE_ID=bench_scope
"$tmp/kommo-sim" --addr 127.0.0.1:0 --addr-file "$tmp/addr" --scope-id bench_scope \
	--ledger "$tmp/ledger.jsonl" --rate 0 >/dev/null 2>"$tmp/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [[ -s $tmp/addr ]] && break; sleep 0.1; done
api=$(cat "$tmp/addr")

run="bench-$(date +%s)"
/usr/bin/time -v -o "$tmp/time" "$tmp/kommo-import" run --source "jsonl:$tmp/export.jsonl" --api-url "$api" \
	--run "$run" --rate unlimited --workers "$workers" --progress log --progress-interval 5s --json \
	>"$tmp/summary.json" 2>"$tmp/import.log" || { cat "$tmp/import.log"; exit 1; }

python3 - "$tmp/summary.json" "$tmp/import.log" "$tmp/time" "$tmp/ledger.jsonl" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))
log = open(sys.argv[2]).read()
t = open(sys.argv[3]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
stage = re.search(r'staging done.*?elapsed_seconds=(\S+)', log)
ledger = sum(1 for _ in open(sys.argv[4]))
print(f"staged:           {s['staged']} messages" + (f" in {stage.group(1)}" if stage else ""))
print(f"sent:             {s['sent_now']} messages, ledger {ledger} lines, {s['in_doubt_found']} in-doubt found")
print(f"elapsed:          {s['elapsed_seconds']:.1f} s; sending {s['effective_rate']:.0f} messages/s")
print(f"HTTP requests:    {s['http_requests']} ({s['requests_per_message']:.4f} per message)")
print(f"peak RSS:         {rss:.0f} MB")
PY

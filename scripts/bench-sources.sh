#!/usr/bin/env bash
# Measures the source readers: go test benchmarks (records/s and MB/s for ~1 KB
# records, one core), then the peak memory while reading a ~1 GB JSONL file and
# a file a tenth of that size: the two peaks should be about the same, since
# only the msgid index (~50 bytes a message) grows with the input.
#
# Then the Telegram reader: its benchmark (messages/s, one core), and
# `kommo-import convert` over a generated whole-account export of
# TELEGRAM_MESSAGES messages (~535 bytes each, as Telegram Desktop lays them
# out): messages/s by the clock and per CPU-second, and the peak RSS.
#
#   scripts/bench-sources.sh            # ~1 GB (1,000,000 records), then 1,000,000 Telegram messages
#   RECORDS=200000 scripts/bench-sources.sh
#   ONLY=telegram TELEGRAM_MESSAGES=1000000 scripts/bench-sources.sh
set -euo pipefail
cd "$(dirname "$0")/.."
records=${RECORDS:-1000000}
tg_messages=${TELEGRAM_MESSAGES:-1000000}
only=${ONLY:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

telegram() {
  echo "== Telegram: benchmark (one core)"
  go test -run '^$' -bench BenchmarkTelegram -benchtime 3x -cpu 1 ./sources/telegram/ | grep -E '^Benchmark'
  go build -o "$tmp/" ./cmd/kommo-import ./internal/benchgen
  mkdir -p "$tmp/tg"
  echo "== Telegram: generating a $tg_messages-message export"
  "$tmp/benchgen" -format telegram -messages "$tg_messages" -conversations 2000 >"$tmp/tg/result.json"
  ls -l "$tmp/tg/result.json" | awk '{printf "result.json %.0f MB\n", $5/1e6}'
  echo "== kommo-import convert --source telegram:DIR --bot-id BENCH --media-missing text >/dev/null"
  /usr/bin/time -f "%e %U %S %M" -o "$tmp/time" "$tmp/kommo-import" convert --source "telegram:$tmp/tg" \
    --bot-id BENCH --media-missing text 2>"$tmp/report" >/dev/null || { cat "$tmp/report"; exit 1; }
  grep -E '^  (records|valid|rejected)' "$tmp/report"
  read -r elapsed user sys rss <"$tmp/time"
  awk -v n="$tg_messages" -v e="$elapsed" -v u="$user" -v s="$sys" -v r="$rss" 'BEGIN {
    printf "%d messages in %.1f s: %.0f messages/s by the clock, %.0f per CPU-second (user %.1f s, sys %.1f s); peak RSS %.0f MB\n",
      n, e, n / e, n / (u + s), u, s, r / 1024 }'
  echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg))"
}
if [[ $only == telegram ]]; then
  telegram
  exit 0
fi

echo "== benchmarks (one core)"
go test -run '^$' -bench 'BenchmarkJSONL|BenchmarkCSV' -benchtime 5x -cpu 1 ./sources/ | grep -E '^Benchmark'

go build -o "$tmp/benchread" ./sources/internal/benchread
small=$((records / 10))
echo "== generating $records and $small records"
"$tmp/benchread" -generate "$records" -o "$tmp/big.jsonl"
"$tmp/benchread" -generate "$small" -o "$tmp/small.jsonl"
ls -l "$tmp"/*.jsonl | awk '{printf "%s %.0f MB\n", $NF, $5/1e6}'

for f in small big; do
  echo "== reading $f.jsonl"
  "$tmp/benchread" "$tmp/$f.jsonl"
done

telegram

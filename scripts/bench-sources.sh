#!/usr/bin/env bash
# Measures the source readers: go test benchmarks (records/s and MB/s for ~1 KB
# records, one core), then the peak memory while reading a ~1 GB JSONL file and
# a file a tenth of that size: the two peaks should be about the same, since
# only the msgid index (~50 bytes a message) grows with the input.
#
#   scripts/bench-sources.sh            # ~1 GB (1,000,000 records)
#   RECORDS=200000 scripts/bench-sources.sh
set -euo pipefail
cd "$(dirname "$0")/.."
records=${RECORDS:-1000000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

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

#!/usr/bin/env bash
# The README's first command (`make demo`): a real import into the bundled
# Chats API simulator, on a throwaway PostgreSQL unless DATABASE_URL is set.
#
#  1. validate a messy export: every bad record with its line, field and reason;
#  2. import testdata/messages.jsonl into kommo-sim and print the summary;
#  3. check what the "API" received: every message once, one loud per chat;
#  4. run the same command again: it resumes to nothing, sending nothing twice.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${DATABASE_URL:-} ]]; then
	exec scripts/with-pg.sh --database-url "$0" "$@"
fi

go build -o bin/ ./cmd/kommo-import ./cmd/kommo-sim
tmp=$(mktemp -d)
sim_pid=
cleanup() {
	if [[ -n $sim_pid ]]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# One environment serves both programs, as in a real rehearsal.
export KOMMO_CHANNEL_SECRET=demo-secret-not-for-production
export KOMMO_SCOPE_ID=demo-channel_demo-account
bin/kommo-sim --addr 127.0.0.1:0 --addr-file "$tmp/addr" --ledger "$tmp/ledger.jsonl" \
	>/dev/null 2>"$tmp/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [[ -s $tmp/addr ]] && break; sleep 0.05; done
[[ -s $tmp/addr ]] || { cat "$tmp/sim.log"; echo "demo FAILED: kommo-sim did not start"; exit 1; }
export KOMMO_API_URL=$(cat "$tmp/addr")

echo "== 1. kommo-import validate --source testdata/messages-messy.jsonl"
set +e
bin/kommo-import validate --source testdata/messages-messy.jsonl 2>&1 | sed 's/^/   /'
set -e

echo
echo "== 2. kommo-import run --source testdata/messages.jsonl   (simulator at $KOMMO_API_URL)"
echo "   (5 requests/s, the default --rate: Kommo documents at most 7, which the simulator enforces)"
bin/kommo-import run --source testdata/messages.jsonl --progress none | sed 's/^/   /'

echo
echo "== 3. what the simulator received"
python3 - "$tmp/ledger.jsonl" <<'PY'
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ids = collections.Counter(r["msgid"] for r in rows)
convs = {r["conversation_id"] for r in rows}
loud = [r for r in rows if not r["silent"]]
newest = {}
for r in rows:
    c = r["conversation_id"]
    if c not in newest or r["msec_timestamp"] >= newest[c]["msec_timestamp"]:
        newest[c] = r
ok = (len(ids) == len(rows) and len(loud) == len(convs)
      and all(newest[r["conversation_id"]]["msgid"] == r["msgid"] for r in loud))
print(f"   {len(rows)} messages in {len(convs)} conversations, {len(rows) - len(ids)} duplicates, "
      f"{len(loud)} not silent (the newest of each conversation)")
sys.exit(0 if ok else 1)
PY

echo
echo "== 4. the same command again: nothing left to send"
bin/kommo-import run --source testdata/messages.jsonl --progress none | grep -E "sent:|HTTP" | sed 's/^/   /'
[[ $(wc -l <"$tmp/ledger.jsonl") -eq 14 ]] || { echo "demo FAILED: the second run sent something"; exit 1; }

echo
echo "demo OK: a real import is next: see README.md, \"A real migration, step by step\""

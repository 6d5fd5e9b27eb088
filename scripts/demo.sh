#!/usr/bin/env bash
# The README's first command (`make demo`): a real import into the bundled
# Chats API simulator (kommo-sim), on a throwaway PostgreSQL unless
# DATABASE_URL is set.
#
#  1. import a messy export (testdata/messages-messy.jsonl: valid messages
#     mixed with broken, incomplete and duplicate records) and print the summary;
#  2. list the records it rejected, with line and reason;
#  3. check what the "API" received: every message once, one loud (not silent)
#     message per conversation, its newest;
#  4. read every chat's history back through the API (kommo-import verify);
#  5. run the same command again: it resumes to nothing, sending nothing twice.
#
# Needs Go and bash; nothing leaves 127.0.0.1. DEMO_DATA=FILE imports another
# JSONL or CSV export instead; DEMO_SOURCE=KIND:PATH any source kind, e.g.
#   DEMO_SOURCE=telegram:testdata/telegram/DataExport_2024-04-01 make demo
# (a messenger export's company messages go out as the channel's bot, and its
# media as text naming the file: --bot-id demo-bot --media-missing text).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${DATABASE_URL:-} ]]; then
	exec scripts/with-pg.sh --database-url "$0" "$@"
fi

data=${DEMO_SOURCE:-${DEMO_DATA:-testdata/messages-messy.jsonl}}
rate=20
# The flags of every run of the demo; a messenger export has managers' messages
# (mapped to Kommo users in a real migration: --users) and local media files.
extra=()
case $data in
telegram:* | whatsapp:* | messenger:* | instagram:*) extra=(--bot-id demo-bot --media-missing text) ;;
esac
fail() {
	echo
	echo "demo FAILED: $*"
	exit 1
}
indent() { sed 's/^/   /'; }

echo "== building bin/kommo-import and bin/kommo-sim"
go build -o bin/ ./cmd/kommo-import ./cmd/kommo-sim

tmp=$(mktemp -d)
sim_pid=
stop_sim() {
	if [[ -n $sim_pid ]]; then
		kill "$sim_pid" 2>/dev/null || true
		wait "$sim_pid" 2>/dev/null || true
		sim_pid=
	fi
}
trap 'stop_sim; rm -rf "$tmp"' EXIT

# One environment serves both programs, as in a rehearsal. The scope and run
# are new each time, so the demo also works against a DATABASE_URL that has
# seen it before (a msgid already sent to a scope is never sent again).
stamp=$(date +%Y%m%d-%H%M%S)-$$
export KOMMO_CHANNEL_SECRET=demo-secret-not-for-production
export KOMMO_SCOPE_ID=demo-channel_demo-$stamp
run=demo-$stamp
bin/kommo-sim --addr 127.0.0.1:0 --addr-file "$tmp/addr" --ledger "$tmp/ledger.jsonl" --rate "$rate" \
	>/dev/null 2>"$tmp/sim.log" &
sim_pid=$!
for _ in $(seq 200); do [[ -s $tmp/addr ]] && break; sleep 0.05; done
[[ -s $tmp/addr ]] || { cat "$tmp/sim.log"; fail "kommo-sim did not start"; }
KOMMO_API_URL=$(cat "$tmp/addr")
export KOMMO_API_URL

echo
echo "== 1. kommo-import run --source $data --rate $rate ${extra[*]}   (simulator at $KOMMO_API_URL)"
echo "   Kommo documents at most 7 requests/s per channel, and kommo-import sends 5/s unless told"
echo "   otherwise. The simulator here enforces $rate/s, so the demo runs at --rate $rate (hence the warning)."
echo
set +e
bin/kommo-import run --source "$data" --run "$run" --rate "$rate" --progress none "${extra[@]}" 2>&1 | indent
code=${PIPESTATUS[0]}
set -e
case $code in
0) echo "   exit code 0: every message sent" ;;
3) echo "   exit code 3: finished, with rejected records (the file has bad records on purpose)" ;;
*) fail "kommo-import run exited with $code (0 or 3 expected)" ;;
esac
sent=$(bin/kommo-import status --run "$run" --json | sed -n 's/^ *"sent": \([0-9]*\),*$/\1/p')
[[ -n $sent ]] || fail "kommo-import status did not report the messages sent"

echo
echo "== 2. the rejected records: kommo-import report --run $run"
set +e
bin/kommo-import report --run "$run" --format text >"$tmp/report.txt" 2>&1
report_code=$?
set -e
head -n 30 "$tmp/report.txt" | indent
[[ $(wc -l <"$tmp/report.txt") -le 30 ]] || echo "   ..."
[[ $report_code -eq 0 || $report_code -eq 3 ]] || fail "kommo-import report exited with $report_code"

echo
echo "== 3. what the simulator received (its ledger: one line per accepted message)"
# The ledger's top-level fields come before the payload, so the first match
# of each is the message's own.
awk '
function field(name, quoted,    re) {
	re = quoted ? "\"" name "\":\"[^\"]*\"" : "\"" name "\":[a-z0-9]+"
	if (!match($0, re)) { print "   unreadable ledger line " NR; bad = 1; return "" }
	return substr($0, RSTART + length(name) + 3 + quoted, RLENGTH - length(name) - 3 - 2 * quoted)
}
{
	conv = field("conversation_id", 1); id = field("msgid", 1)
	silent = field("silent", 0); msec = field("msec_timestamp", 0) + 0; dup = field("duplicate", 0)
	lines++
	if (dup == "true" || seen[id]++) dups++
	if (conv in last && msec < last[conv]) { print "   out of order: " id " in " conv; bad = 1 }
	last[conv] = msec
	convs[conv] = 1
	if (silent == "false") { loud++; loud_msec[conv] = msec; loud_of[conv]++ }
}
END {
	n = 0
	for (c in convs) {
		n++
		if (loud_of[c] != 1 || loud_msec[c] != last[c]) { print "   conversation " c ": the newest message is not the one loud message"; bad = 1 }
	}
	printf "   %d messages in %d conversations, %d duplicates, %d not silent (the newest of each conversation)\n", lines, n, dups, loud
	exit (bad || dups || lines == 0) ? 1 : 0
}' "$tmp/ledger.jsonl" || fail "the simulator's ledger is not what an exactly-once import gives"
lines=$(wc -l <"$tmp/ledger.jsonl")
[[ $lines -eq $sent ]] || fail "the run recorded $sent messages sent, the simulator accepted $lines"

echo
echo "== 4. kommo-import verify --run $run   (reads every chat's history back through the API)"
bin/kommo-import verify --run "$run" --rate "$rate" 2>&1 | indent
[[ ${PIPESTATUS[0]} -eq 0 ]] || fail "kommo-import verify found messages missing or duplicated"

echo
echo "== 5. the same command again: it resumes, and nothing is left to send"
set +e
bin/kommo-import run --source "$data" --run "$run" --rate "$rate" --progress none "${extra[@]}" >"$tmp/again.txt" 2>&1
again=$?
set -e
grep -E "^ *sent:|HTTP requests" "$tmp/again.txt" | indent
[[ $again -eq $code ]] || { indent <"$tmp/again.txt"; fail "the second run exited with $again, the first with $code"; }
[[ $(wc -l <"$tmp/ledger.jsonl") -eq $lines ]] || fail "the second run sent something again"

stop_sim
echo
echo "demo OK: $lines messages imported exactly once, in order, one notification per chat;"
echo "a real migration, step by step: README.md"

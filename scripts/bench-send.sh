#!/usr/bin/env bash
# The send path under trouble, with the real binaries, a throwaway PostgreSQL
# and kommo-sim. Three scenarios, each printing one block of figures:
#
#   faults    ~9% mixed API faults (accept-then-fail among them) with the
#             simulator's history delay on and the default --reconcile-wait:
#             delivered messages/s against --rate, HTTP requests per
#             delivered message, in-doubt messages looked up and found,
#             duplicates, and whether the run finished by itself.
#   two       two processes of one run at --rate R against a simulator that
#             enforces R (any excess is a 429); one is killed with SIGKILL
#             part-way and started again: the rate achieved over the run
#             (simulator ledger), max requests in any second, 429s, duplicates.
#   restart   one process at --rate R, SIGKILL, the same command again at
#             once: the time from the kill to the first message accepted
#             after the restart, and to the first full second at >= 99% of R.
#   spend     the rate spent without tuning --workers (the pool sizes itself),
#             one line a case: --rate 1000 against a simulator without
#             latency (2,000 chats); 1,000 small chats at --rate 40 with 20 ms
#             latency; 7% faults at --rate 20; one conversation alone at
#             --rate 7 with 100 ms latency; and the speed at 25 ms latency
#             against a sequential importer (internal/seqimport).
#
#   scripts/bench-send.sh                       # all three, a few minutes each at most
#   SCENARIOS=restart RESTART_RATE=7 scripts/bench-send.sh
#
# Sizes and settings (defaults in brackets):
#   faults:  FAULTS_MESSAGES [5000] FAULTS_CONVERSATIONS [400] FAULTS_RATE [100]
#            FAULTS_SPEC [500=0.03,503=0.02,accept-500=0.02,accept-drop=0.01,hang=0.01]
#            FAULTS_HANG [2s] FAULTS_HISTORY_DELAY [500ms] FAULTS_RECONCILE_WAIT [10s]
#            FAULTS_WORKERS [8] FAULTS_TIMEOUT [600 s: longer counts as "did not finish"]
#   two:     TWO_RATE [15] TWO_MESSAGES [1200] TWO_CONVERSATIONS [120]
#            TWO_KILL_AFTER [25 s] TWO_RESTART_AFTER [2 s]
#   restart: RESTART_RATE [20] RESTART_MESSAGES [800] RESTART_CONVERSATIONS [80]
#            RESTART_KILL_AFTER [15 s]
#   spend:   SPEND_CASES [fast small faults single seq]
#   KEEP=1 keeps the logs, ledgers and summaries (the directory is printed);
#   SIM_FLAGS=--verbose makes kommo-sim log every request there.
#
# Uses $DATABASE_URL when set (each scenario uses its own scope and run name,
# so it touches nothing else; prefer a scratch database); otherwise a
# throwaway cluster from scripts/with-pg.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${DATABASE_URL:-} ]]; then
	exec scripts/with-pg.sh --database-url "$0" "$@"
fi
scenarios=${SCENARIOS:-faults two restart spend}
tmp=$(mktemp -d)
started_pids=()
cleanup() {
	for p in "${started_pids[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	[[ -n ${KEEP:-} ]] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/" ./cmd/kommo-import ./cmd/kommo-sim ./internal/benchgen ./internal/seqimport
export KOMMO_CHANNEL_SECRET=bench-secret
stamp=$(date +%s)

# start_sim NAME SCOPE [kommo-sim flags...]: sets sim_pid and api.
start_sim() {
	local name=$1 scope=$2
	shift 2
	rm -f "$tmp/$name.addr"
	"$tmp/kommo-sim" --addr 127.0.0.1:0 --addr-file "$tmp/$name.addr" --scope-id "$scope" \
		--ledger "$tmp/$name.ledger.jsonl" "$@" ${SIM_FLAGS:-} >/dev/null 2>"$tmp/$name.sim.log" &
	sim_pid=$!
	started_pids+=("$sim_pid")
	for _ in $(seq 100); do [[ -s $tmp/$name.addr ]] && break; sleep 0.1; done
	api=$(cat "$tmp/$name.addr")
}

stop_sim() {
	curl -fsS "$api/_sim/stats" >"$tmp/$1.stats.json"
	kill "$sim_pid" 2>/dev/null || true
	wait "$sim_pid" 2>/dev/null || true
}

now() { date +%s.%N; }

# The figures are computed from the simulator's ledger (arrived_at of every
# accepted message: when its request reached the simulator, as the rate
# limit counts it), its /_sim/stats and the importers' --json summaries.
cat >"$tmp/figures.py" <<'PY'
import json, math, re, sys
from datetime import datetime, timezone

def ts(s):
    # RFC 3339 with nanoseconds: keep them (fromisoformat stops at microseconds).
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s)
    base = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    frac = m.group(2) or "0"
    return base.timestamp() + int(frac) / 10 ** len(frac)

def ledger(path):
    out = []
    for line in open(path):
        e = json.loads(line)
        out.append((ts(e["arrived_at"]), e["msgid"], e["duplicate"]))
    out.sort()
    return out

def summaries(paths):
    out = []
    for p in paths:
        try:
            out.append(json.load(open(p)))
        except (OSError, ValueError):
            pass  # a killed process prints none
    return out

def span_rate(times):
    if len(times) < 2:
        return 0.0, 0.0
    span = times[-1] - times[0]
    return (len(times) - 1) / span, span

def per_second(times, start, end):
    """Messages in each whole second [start+k, start+k+1) before end."""
    n = int(end - start)
    counts = [0] * n
    for t in times:
        k = int(t - start)
        if 0 <= k < n:
            counts[k] += 1
    return counts

def first_full_second(times, since, need):
    """The first window [t_i, t_i + 1 s) with t_i >= since holding >= need messages."""
    j = 0
    for i, t in enumerate(times):
        if t < since:
            continue
        j = max(j, i)
        while j < len(times) and times[j] < t + 1.0:
            j += 1
        if j - i >= need:
            return t
    return None

def faults(a):
    stats, led = json.load(open(a.stats)), ledger(a.ledger)
    s = summaries([a.summary])
    s = s[0] if s else {}
    times = [t for t, _, _ in led]
    sending = s["sent_now"] / s["effective_rate"] if s.get("effective_rate") else float("nan")
    delivered = s.get("sent_now", 0) + s.get("in_doubt_found", 0)
    lrate, lspan = span_rate(times)
    ep = stats["by_endpoint"]
    nm = ep.get("new_message", 0)
    clean = delivered - s.get("in_doubt_found", 0)
    injected = sum(stats["faults"].values())
    print(f"== faults: {a.messages} messages in {a.convs} conversations, --rate {a.rate}, --workers {a.workers}, "
          f"--reconcile-wait {a.reconcile}; kommo-sim --faults {a.spec} --hang {a.hang} --history-delay {a.hdelay}")
    fin = "yes" if a.rc == 0 else ("NO: killed after the time limit" if a.rc in (124, 137) else f"NO: exit {a.rc}")
    print(f"finished by itself:   {fin} (exit {a.rc}), {s.get('elapsed_seconds', float('nan')):.1f} s in all, "
          f"{sending:.1f} s sending; {s.get('outcome', '?')}")
    print(f"delivered:            {delivered} of {a.messages} ({len(led)} in the ledger); "
          f"{delivered / sending:.1f} messages/s over the sending = {delivered / sending / a.rate:.1%} of --rate; "
          f"first to last accepted {lrate:.1f}/s over {lspan:.1f} s")
    if len(times) >= 10:
        k = int(len(times) * 0.9) - 1
        head = (k) / (times[k] - times[0])
        print(f"the first 90%:        {head:.1f} messages/s = {head / a.rate:.1%} of --rate (while every worker finds work); "
              f"the last 10% took {times[-1] - times[k]:.1f} s (conversations whose messages were in doubt wait out "
              f"--reconcile-wait, one such wait after another)")
    print(f"HTTP requests:        {s.get('http_requests', 0)} = {s.get('requests_per_message', 0):.3f} per delivered message "
          f"({s.get('http_requests', 0) / sending:.1f}/s = {s.get('http_requests', 0) / sending / a.rate:.1%} of --rate); "
          f"simulator: {stats['requests']} ({', '.join(f'{k} {v}' for k, v in sorted(ep.items()))})")
    print(f"faults injected:      {injected} ({', '.join(f'{k} {v}' for k, v in sorted(stats['faults'].items()))}); "
          f"new_message requests that failed: {nm - clean}")
    print(f"in doubt:             {s.get('in_doubt_reconciled', 0)} look-ups, {s.get('in_doubt_found', 0)} found in history (not resent); "
          f"{s.get('retries', 0)} retries; max requests in any 1 s: {stats['max_requests_in_any_1s']}")
    print(f"duplicates:           {stats['duplicates']}")

def two(a):
    stats, led = json.load(open(a.stats)), ledger(a.ledger)
    ss = summaries(a.summaries)
    times = [t for t, _, _ in led]
    lrate, lspan = span_rate(times)
    secs = per_second(times, times[0], times[-1])
    kill = a.kill - times[0]
    around = secs[max(int(kill) - 1, 0):int(kill) + 4]
    print(f"== two processes, one killed: {a.messages} messages in {a.convs} conversations, both at --rate {a.rate}; "
          f"kommo-sim --rate {a.rate}; SIGKILL at {kill:.1f} s, the same command again {a.restart_after} s later")
    print(f"exit codes:           {' '.join(a.rcs)} (survivor, restarted); sent by each: "
          f"{' '.join(str(s['sent_now']) for s in ss)}")
    print(f"rate achieved:        {lrate:.2f} messages/s = {lrate / a.rate:.1%} of --rate ({len(led)} accepted, first to last {lspan:.1f} s); "
          f"requests {stats['requests']} = {stats['requests'] / lspan:.2f}/s over that span (preflights, look-ups and chat creations included)")
    print(f"per second:           min {min(secs)} / max {max(secs)} messages in a whole second; "
          f"the seconds around the kill: {around}")
    print(f"max in any 1 s:       {stats['max_requests_in_any_1s']} requests (--rate {a.rate})")
    print(f"429s:                 {stats['rate_limited']} (the simulator's own rate limit)")
    print(f"duplicates:           {stats['duplicates']}")

def restart(a):
    stats, led = json.load(open(a.stats)), ledger(a.ledger)
    times = [t for t, _, _ in led]
    need = math.ceil(0.99 * a.rate - 1e-9)
    before = [t for t in times if t < a.kill]
    after = [t for t in times if t >= a.kill]
    brate, bspan = span_rate(before)
    full = first_full_second(times, a.kill, need)
    print(f"== kill -9 to full speed: {a.messages} messages in {a.convs} conversations, --rate {a.rate}; "
          f"SIGKILL after {a.kill_after} s, the same command again at once")
    print(f"before the kill:      {brate:.2f} messages/s = {brate / a.rate:.1%} of --rate over {bspan:.1f} s")
    print(f"restart:              the new process started {a.started - a.kill:.3f} s after the kill; exit {a.rc}")
    if after:
        print(f"first accepted:       {after[0] - a.kill:.3f} s after the kill")
    if full is not None:
        print(f"full speed again:     the first whole second with >= {need} messages (99% of {a.rate}) starts "
              f"{full - a.kill:.3f} s after the kill (ends {full + 1 - a.kill:.3f} s after it)")
    else:
        print(f"full speed again:     never: no second after the kill held {need} messages")
    arate, aspan = span_rate(after)
    print(f"after the restart:    {arate:.2f} messages/s = {arate / a.rate:.1%} of --rate over {aspan:.1f} s")
    print(f"max in any 1 s:       {stats['max_requests_in_any_1s']} requests; 429s {stats['rate_limited']}; "
          f"duplicates {stats['duplicates']}; {len(led)} accepted of {a.messages}")

def spend(a):
    stats, led = json.load(open(a.stats)), ledger(a.ledger)
    s = summaries([a.summary])
    s = s[0] if s else {}
    times = [t for t, _, _ in led]
    lrate, lspan = span_rate(times)
    delivered = s.get("sent_now", 0) + s.get("in_doubt_found", 0)
    req = s.get("http_requests", 0)
    faults = sum(stats["faults"].values())
    goal = f" (goal {a.goal})" if a.goal else ""
    of = f" = {lrate / a.rate:.1%} of --rate {a.rate}" if a.rate else ""
    extra = ""
    if faults:
        extra = f"; {faults} faults, {(req - faults) / max(delivered, 1):.3f} requests a delivered message beyond them"
    if a.commits:
        extra += f"; {a.commits / max(len(led), 1):.2f} commits a message"
    print(f"{a.name:<48} {lrate:8.1f} delivered/s{of}{goal}; {len(led)} accepted over {lspan:.1f} s, "
          f"max {stats['max_requests_in_any_1s']} in any 1 s, {stats['duplicates']} duplicates, exit {a.rc}{extra}")

def main():
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("scenario")
    p.add_argument("--stats"); p.add_argument("--ledger"); p.add_argument("--summary")
    p.add_argument("--summaries", nargs="*", default=[]); p.add_argument("--rcs", nargs="*", default=[])
    p.add_argument("--messages", type=int); p.add_argument("--convs", type=int); p.add_argument("--rate", type=float)
    p.add_argument("--workers"); p.add_argument("--reconcile"); p.add_argument("--spec"); p.add_argument("--hang"); p.add_argument("--hdelay")
    p.add_argument("--rc", type=int); p.add_argument("--kill", type=float); p.add_argument("--started", type=float)
    p.add_argument("--kill-after"); p.add_argument("--restart-after")
    p.add_argument("--name"); p.add_argument("--goal"); p.add_argument("--commits", type=int)
    a = p.parse_args()
    if a.rate is not None and a.rate == int(a.rate):
        a.rate = int(a.rate)
    {"faults": faults, "two": two, "restart": restart, "spend": spend}[a.scenario](a)

main()
PY

# gen NAME MESSAGES CONVERSATIONS: the export $tmp/NAME.jsonl.
gen() { "$tmp/benchgen" -messages "$2" -conversations "$3" -seed 9 >"$tmp/$1.jsonl"; }

# importer NAME SCOPE RUN [flags...]: the command line of the scenario's import.
importer_cmd() {
	local name=$1 scope=$2 run=$3
	shift 3
	cmd=("$tmp/kommo-import" run --source "jsonl:$tmp/$name.jsonl" --api-url "$api" --scope-id "$scope"
		--run "$run" --progress log --progress-interval 10s --json "$@")
}

scenario_faults() {
	local n=${FAULTS_MESSAGES:-5000} c=${FAULTS_CONVERSATIONS:-400} rate=${FAULTS_RATE:-100}
	local spec=${FAULTS_SPEC:-500=0.03,503=0.02,accept-500=0.02,accept-drop=0.01,hang=0.01}
	local hang=${FAULTS_HANG:-2s} hdelay=${FAULTS_HISTORY_DELAY:-500ms} reconcile=${FAULTS_RECONCILE_WAIT:-10s}
	local workers=${FAULTS_WORKERS:-8} limit=${FAULTS_TIMEOUT:-600}
	local scope=bench_faults_$stamp
	gen faults "$n" "$c"
	start_sim faults "$scope" --rate 0 --seed 9 --faults "$spec" --hang "$hang" --history-delay "$hdelay"
	importer_cmd faults "$scope" "faults-$stamp" --rate "$rate" --workers "$workers" --reconcile-wait "$reconcile"
	echo "+ ${cmd[*]}" | sed "s|$tmp/||g" >&2
	local rc=0
	timeout --signal=KILL "$limit" "${cmd[@]}" >"$tmp/faults.summary.json" 2>"$tmp/faults.log" || rc=$?
	stop_sim faults
	python3 "$tmp/figures.py" faults --stats "$tmp/faults.stats.json" --ledger "$tmp/faults.ledger.jsonl" \
		--summary "$tmp/faults.summary.json" --messages "$n" --convs "$c" --rate "$rate" --workers "$workers" \
		--reconcile "$reconcile" --spec "$spec" --hang "$hang" --hdelay "$hdelay" --rc "$rc"
	[[ $rc -eq 0 ]] || tail -n 20 "$tmp/faults.log" >&2
}

scenario_two() {
	local rate=${TWO_RATE:-15} n=${TWO_MESSAGES:-1200} c=${TWO_CONVERSATIONS:-120}
	local kill_after=${TWO_KILL_AFTER:-25} restart_after=${TWO_RESTART_AFTER:-2}
	local scope=bench_two_$stamp
	gen two "$n" "$c"
	# A short Retry-After: a 429 (there should be none) costs seconds, not the default 5 minutes.
	start_sim two "$scope" --rate "$rate" --retry-after 2s
	importer_cmd two "$scope" "two-$stamp" --rate "$rate"
	echo "+ 2 x ${cmd[*]}" | sed "s|$tmp/||g" >&2
	"${cmd[@]}" >"$tmp/two.a.json" 2>"$tmp/two.a.log" &
	local a=$!
	started_pids+=("$a")
	"${cmd[@]}" >"$tmp/two.b.json" 2>"$tmp/two.b.log" &
	local b=$!
	started_pids+=("$b")
	sleep "$kill_after"
	local kill_at
	kill_at=$(now)
	kill -9 "$b"
	wait "$b" 2>/dev/null || true
	sleep "$restart_after"
	"${cmd[@]}" >"$tmp/two.c.json" 2>"$tmp/two.c.log" &
	local c2=$!
	started_pids+=("$c2")
	local rca=0 rcc=0
	wait "$a" || rca=$?
	wait "$c2" || rcc=$?
	stop_sim two
	python3 "$tmp/figures.py" two --stats "$tmp/two.stats.json" --ledger "$tmp/two.ledger.jsonl" \
		--summaries "$tmp/two.a.json" "$tmp/two.c.json" --rcs "$rca" "$rcc" --messages "$n" --convs "$c" \
		--rate "$rate" --kill "$kill_at" --restart-after "$restart_after"
}

scenario_restart() {
	local rate=${RESTART_RATE:-20} n=${RESTART_MESSAGES:-800} c=${RESTART_CONVERSATIONS:-80}
	local kill_after=${RESTART_KILL_AFTER:-15}
	local scope=bench_restart_$stamp
	gen restart "$n" "$c"
	start_sim restart "$scope" --rate 0
	importer_cmd restart "$scope" "restart-$stamp" --rate "$rate"
	echo "+ ${cmd[*]}" | sed "s|$tmp/||g" >&2
	"${cmd[@]}" >"$tmp/restart.a.json" 2>"$tmp/restart.a.log" &
	local a=$!
	started_pids+=("$a")
	sleep "$kill_after"
	local kill_at started_at
	kill_at=$(now)
	kill -9 "$a"
	wait "$a" 2>/dev/null || true
	started_at=$(now)
	local rc=0
	"${cmd[@]}" >"$tmp/restart.b.json" 2>"$tmp/restart.b.log" || rc=$?
	stop_sim restart
	python3 "$tmp/figures.py" restart --stats "$tmp/restart.stats.json" --ledger "$tmp/restart.ledger.jsonl" \
		--messages "$n" --convs "$c" --rate "$rate" --kill "$kill_at" --started "$started_at" \
		--kill-after "$kill_after" --rc "$rc"
}

# spend_case NAME GOAL MESSAGES CONVERSATIONS RATE "SIM FLAGS" [importer flags...]: one line.
spend_case() {
	local name=$1 goal=$2 n=$3 c=$4 rate=$5 simflags=$6
	shift 6
	local scope=bench_spend_${name}_$stamp
	gen "spend-$name" "$n" "$c"
	# shellcheck disable=SC2086 # the simulator's flags, split on purpose
	start_sim "spend-$name" "$scope" --rate 0 $simflags
	importer_cmd "spend-$name" "$scope" "spend-$name-$stamp" --rate "$rate" "$@"
	local rc=0 c0 c1
	c0=$(commits)
	"${cmd[@]}" >"$tmp/spend-$name.summary.json" 2>"$tmp/spend-$name.log" || rc=$?
	c1=$(commits)
	stop_sim "spend-$name"
	local r=$rate
	[[ $r == unlimited ]] && r=0
	python3 "$tmp/figures.py" spend --stats "$tmp/spend-$name.stats.json" --ledger "$tmp/spend-$name.ledger.jsonl" \
		--summary "$tmp/spend-$name.summary.json" --rate "$r" --rc "$rc" --name "$name: $n messages, $c chats" --goal "$goal" \
		--commits $((c1 - c0))
}

# commits is the database's count of committed transactions (every session's: the import's
# checkpoints, its heartbeat, staging).
commits() { psql "$DATABASE_URL" -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }

scenario_spend() {
	echo "== the rate spent without tuning --workers (kommo-import's pool sizes itself; --workers is its ceiling, default 8)"
	for k in ${SPEND_CASES:-fast small faults single seq}; do
		case $k in
		fast) spend_case fast ">= 900/s" 20000 2000 1000 "" ;;
		small) spend_case small ">= 39.6/s (99%)" 2000 1000 40 "--latency 20ms" ;;
		faults) spend_case faults ">= 16/s, <= 1.1 requests a message beyond the faults" 1500 300 20 \
			"--faults 500=0.02,503=0.02,accept-500=0.02,accept-drop=0.01 --seed 9 --history-delay 200ms" --reconcile-wait 2s ;;
		single) spend_case single ">= 6.93/s" 300 1 7 "--latency 100ms" ;;
		seq)
			local scope=bench_spend_seq_$stamp
			gen spend-seq 1500 150
			start_sim spend-seq "$scope" --rate 0 --latency 25ms
			local seqrate
			seqrate=$("$tmp/seqimport" --source "$tmp/spend-seq.jsonl" --api-url "$api" --scope-id "$scope" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rate"])')
			stop_sim spend-seq
			echo "sequential importer at 25 ms latency (internal/seqimport): $seqrate messages/s; kommo-import, goal >= 6x:"
			spend_case seq25 ">= 6x the sequential" 3000 300 unlimited "--latency 25ms"
			;;
		esac
	done
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $scenarios; do
	"scenario_$s"
done

#!/usr/bin/env bash
# The send rate with media: does a run whose messages are 30% pictures still spend its --rate?
# Uploads run ahead of the slots (the importer's uploader), so they should cost none of it.
#
#   scripts/bench-media-send.sh          (make bench-media-send)
#
# With the real binaries, a throwaway PostgreSQL (scripts/with-pg.sh, unless DATABASE_URL is set),
# a throwaway SeaweedFS (scripts/with-s3.sh, unless TEST_S3_ENDPOINT is set) and kommo-sim enforcing
# the same rate (any excess would be a 429) and downloading every media URL it accepts, as Kommo
# does. It writes a JSONL export of MEDIA_MESSAGES messages in MEDIA_CONVERSATIONS conversations,
# MEDIA_SHARE of them pictures beside it (each a file of its own, MEDIA_SIZE bytes on average),
# imports it with --media-store at --rate MEDIA_RATE, and prints: the rate achieved (kommo-sim's
# ledger, first to last accepted message, and per whole second), how many files were put at their
# message's turn rather than ahead of it, what kommo-sim fetched, and how the upload kept ahead.
# BASELINE=1 also imports the same export without a store (the pictures go out as text) for the
# rate without any upload.
#
# Settings (defaults in brackets): MEDIA_MESSAGES [1050] MEDIA_CONVERSATIONS [60] MEDIA_SHARE [0.3]
# MEDIA_SIZE [200000] MEDIA_RATE [7] MEDIA_WORKERS [kommo-import's default] MEDIA_UPLOADS [4] BASELINE [0]; NICE=-10 runs
# kommo-import at that niceness (as root), so that other jobs on a shared machine delay its slots
# less; KEEP=1 keeps the directory (printed) with the logs, ledgers and summaries.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${DATABASE_URL:-} ]]; then
	exec scripts/with-pg.sh --database-url "$0" "$@"
fi
if [[ -z ${TEST_S3_ENDPOINT:-} ]]; then
	exec scripts/with-s3.sh "$0" "$@"
fi
n=${MEDIA_MESSAGES:-1050} convs=${MEDIA_CONVERSATIONS:-60} share=${MEDIA_SHARE:-0.3} size=${MEDIA_SIZE:-200000}
rate=${MEDIA_RATE:-7} workers=${MEDIA_WORKERS:-} uploads=${MEDIA_UPLOADS:-4}
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

go build -o "$tmp/" ./cmd/kommo-import ./cmd/kommo-sim
export KOMMO_CHANNEL_SECRET=bench-secret
export AWS_ACCESS_KEY_ID=$TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TEST_S3_SECRET_KEY AWS_REGION=${TEST_S3_REGION:-us-east-1}
export AWS_CONFIG_FILE=$tmp/no-aws-config AWS_SHARED_CREDENTIALS_FILE=$tmp/no-aws-credentials AWS_EC2_METADATA_DISABLED=true
stamp=$(date +%s)
bucket=bench-media-$stamp
curl -fsS -o /dev/null --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
	-X PUT "$TEST_S3_ENDPOINT/$bucket"

# The export: JSONL beside a folder of pictures, every picture a file of its own (random bytes, so
# each is hashed and uploaded: nothing is found already in the store).
python3 - "$tmp/export" "$n" "$convs" "$share" "$size" <<'PY'
import json, os, random, sys
out, n, convs, share, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
os.makedirs(os.path.join(out, "media"))
r = random.Random(9)
base = 1_620_000_000_000
pictures = 0
with open(os.path.join(out, "export.jsonl"), "w") as f:
    for i in range(n):
        c, seq = i % convs, i // convs
        p = {"msgid": f"bench-{c}-{seq}", "conversation_id": f"bench-conv-{c}",
             "msec_timestamp": base + seq * 60_000 + c, "sender": {"id": f"client-{c}", "name": f"Client {c}"},
             "message": {"type": "text", "text": f"message {seq} of conversation {c}"}}
        if r.random() < share:
            name = f"media/IMG_{c:04d}_{seq:05d}.jpg"
            with open(os.path.join(out, name), "wb") as m:
                m.write(os.urandom(max(1, int(size * r.uniform(0.5, 1.5)))))
            p["message"] = {"type": "picture", "media": name, "text": "a picture"}
            pictures += 1
        f.write(json.dumps(p) + "\n")
print(f"export: {n} messages in {convs} conversations, {pictures} pictures ({pictures / n:.0%}), "
      f"{sum(os.path.getsize(os.path.join(out, 'media', x)) for x in os.listdir(os.path.join(out, 'media'))) / 1e6:.1f} MB of them")
PY

# start_sim NAME SCOPE: sets sim_pid and api.
start_sim() {
	rm -f "$tmp/$1.addr"
	"$tmp/kommo-sim" --addr 127.0.0.1:0 --addr-file "$tmp/$1.addr" --scope-id "$2" --ledger "$tmp/$1.ledger.jsonl" \
		--rate "$rate" --retry-after 2s >/dev/null 2>"$tmp/$1.sim.log" &
	sim_pid=$!
	started_pids+=("$sim_pid")
	for _ in $(seq 100); do [[ -s $tmp/$1.addr ]] && break; sleep 0.1; done
	api=$(cat "$tmp/$1.addr")
}

stop_sim() {
	for _ in $(seq 300); do
		[[ $(curl -fsS "$api/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["media_pending"])') == 0 ]] && break
		sleep 0.1
	done
	curl -fsS "$api/_sim/stats" >"$tmp/$1.stats.json"
	kill "$sim_pid" 2>/dev/null || true
	wait "$sim_pid" 2>/dev/null || true
}

# run NAME [flags...]: import the export into a scope of its own.
run() {
	local name=$1
	shift
	start_sim "$name" "bench_${name}_$stamp"
	local cmd=(${NICE:+nice -n "$NICE"} "$tmp/kommo-import" run --source "jsonl:$tmp/export/export.jsonl" --api-url "$api" --scope-id "bench_${name}_$stamp"
		--run "$name-$stamp" --rate "$rate" ${workers:+--workers "$workers"} --media-missing text --progress log --progress-interval 30s --json "$@")
	echo "+ ${cmd[*]}" | sed "s|$tmp/||g" >&2
	"${cmd[@]}" >"$tmp/$name.summary.json" 2>"$tmp/$name.log" || { tail -n 20 "$tmp/$name.log" >&2; exit 1; }
	stop_sim "$name"
	psql -X -q -A -t "$DATABASE_URL" -c "SELECT extract(epoch FROM min(uploaded_at)), extract(epoch FROM max(uploaded_at)), count(*)
		FROM kommo_import_media_uploads WHERE run_name = '$name-$stamp'" >"$tmp/$name.uploads"
}

cat >"$tmp/figures.py" <<'PY'
import json, re, sys
from datetime import datetime

def ts(s):
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s)
    frac = m.group(2) or "0"
    return datetime.fromisoformat(m.group(1) + m.group(3).replace("Z", "+00:00")).timestamp() + int(frac) / 10 ** len(frac)

tmp, name, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
times = sorted(ts(json.loads(l)["arrived_at"]) for l in open(f"{tmp}/{name}.ledger.jsonl"))
stats = json.load(open(f"{tmp}/{name}.stats.json"))
s = json.load(open(f"{tmp}/{name}.summary.json"))
span = times[-1] - times[0]
lrate = (len(times) - 1) / span
secs = [0] * int(span)
for t in times:
    k = int(t - times[0])
    if k < len(secs):
        secs[k] += 1
k = int(len(times) * 0.95) - 1
head = k / (times[k] - times[0])
print(f"== {name}: {len(times)} messages accepted, {s['outcome']}, --rate {rate:g}")
print(f"rate achieved:     {lrate:.3f} messages/s = {lrate / rate:.2%} of --rate (first to last accepted, {span:.1f} s); "
      f"the first 95%: {head / rate:.2%} of --rate")
print(f"per whole second:  min {min(secs)}, max {max(secs)}; max requests in any 1 s {stats['max_requests_in_any_1s']}; "
      f"429s {stats['rate_limited']}; duplicates {stats['duplicates']}; slots given up {s.get('slots_given_up', 0)}")
m, now = s.get("media"), s.get("media_now")
if m:
    print(f"media:             {m['messages']} pictures: {m['sent_as_media']} sent as media, {m['placeholders']} as text, "
          f"{m['failed']} failed; {m['files']} files, {m['bytes'] / 1e6:.1f} MB, {m['uploaded']} uploaded")
    print(f"at their turn:     {now['at_turn']} of {m['files']} files were not uploaded yet when their message's turn came")
    up = open(f"{tmp}/{name}.uploads").read().split("|")
    if len(up) == 3 and up[0].strip():
        first, last = float(up[0]), float(up[1])
        print(f"uploads:           all {int(up[2])} recorded within {last - first:.1f} s of the first "
              f"({m['bytes'] / 1e6 / max(last - first, 1e-3):.1f} MB/s), while sending took {span:.1f} s")
print(f"kommo-sim fetched: {stats.get('media_fetched', 0)} files, {stats.get('media_bytes', 0) / 1e6:.1f} MB; "
      f"failed: {stats.get('media_failed') or 'none'}")
PY

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
run media --media-store "s3://$bucket/run" --media-endpoint "$TEST_S3_ENDPOINT" --media-uploads "$uploads"
python3 "$tmp/figures.py" "$tmp" media "$rate"
if [[ ${BASELINE:-0} != 0 ]]; then
	run text
	python3 "$tmp/figures.py" "$tmp" text "$rate"
fi

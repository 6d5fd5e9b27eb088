#!/usr/bin/env bash
# with-s3.sh: run a command with a throwaway S3-compatible server (SeaweedFS, scripts/s3.sh).
#
#   scripts/with-s3.sh CMD [ARGS...]
#
# Builds `weed` on first use (cached), starts it in a fresh temp dir (on /dev/shm when it has
# room; S3_TMPDIR overrides), exports TEST_S3_ENDPOINT, TEST_S3_REGION, TEST_S3_ACCESS_KEY,
# TEST_S3_SECRET_KEY, TEST_S3_READONLY_ACCESS_KEY and TEST_S3_READONLY_SECRET_KEY for CMD, and
# always stops it and deletes the dir afterwards: on success, failure, Ctrl-C or kill (SIGTERM,
# SIGHUP), and through a watchdog even after SIGKILL. Exits with CMD's exit code. The same
# arrangement as scripts/with-pg.sh; the two nest: scripts/with-pg.sh scripts/with-s3.sh CMD.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
if [[ $# -eq 0 ]]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi

base_dir() {
	if [[ -n ${S3_TMPDIR:-} ]]; then
		echo "$S3_TMPDIR"
		return
	fi
	local avail_kb
	if [[ -d /dev/shm && -w /dev/shm ]]; then
		avail_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
		if [[ $avail_kb =~ ^[0-9]+$ ]] && ((avail_kb >= 2 * 1024 * 1024)); then
			echo /dev/shm
			return
		fi
	fi
	echo "${TMPDIR:-/tmp}"
}

# Build before making the dir, so a first build (minutes) is not raced by the watchdog and its
# output comes first.
"$here/s3.sh" build >/dev/null

dir=$(mktemp -d "$(base_dir)/kommo-s3.XXXXXX")

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	local watchdog
	watchdog=$(cat "$dir/watchdog.pid" 2>/dev/null || true)
	if [[ $watchdog =~ ^[0-9]+$ ]]; then
		kill "$watchdog" 2>/dev/null || true
	fi
	"$here/s3.sh" stop "$dir" || echo "with-s3.sh: could not stop the S3 server in $dir" >&2
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if ! env=$("$here/s3.sh" start "$dir"); then
	exit 1
fi

detach=()
if command -v setsid >/dev/null 2>&1; then
	detach=(setsid)
fi
(
	trap - EXIT INT TERM HUP
	exec ${detach[@]+"${detach[@]}"} bash -c '
		echo $$ >"$3/watchdog.pid"
		while kill -0 "$1" 2>/dev/null; do sleep 1; done
		"$2/s3.sh" stop "$3"
	' with-s3-watchdog "$$" "$here" "$dir"
) </dev/null >/dev/null 2>&1 &

while IFS= read -r line; do
	[[ $line == TEST_S3_*=* ]] && export "${line?}"
done <<<"$env"

set +e
"$@"
rc=$?
set -e
exit "$rc"

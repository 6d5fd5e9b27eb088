#!/usr/bin/env bash
# with-pg.sh: run a command against a throwaway PostgreSQL cluster.
#
#   scripts/with-pg.sh [--database-url] CMD [ARGS...]
#
# Starts a cluster (scripts/pg.sh) in a fresh temp dir (on /dev/shm when it has room, for speed;
# PG_TMPDIR overrides), exports its URL as TEST_DATABASE_URL for CMD,
# and always stops it and deletes the dir afterwards: on success, failure, Ctrl-C or kill (SIGTERM,
# SIGHUP). Exits with CMD's exit code (130 after Ctrl-C).
#
# --database-url also exports the URL as DATABASE_URL (for the demo, which runs the real CLI). It is
# opt-in because DATABASE_URL is what the tool itself reads: silently repointing a user's setting at
# a throwaway server would surprise.
#
# A watchdog stops the cluster even if this script is killed with SIGKILL, so no server outlives it.
# CMD runs in the foreground (so an interactive CMD such as psql keeps the terminal); a signal sent
# to this script alone therefore takes effect when CMD exits. Ctrl-C, timeout(1) and CI runners
# signal the whole process group, which ends CMD and the script at once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
export_database_url=0
if [[ ${1:-} == --database-url ]]; then
	export_database_url=1
	shift
fi
if [[ $# -eq 0 ]]; then
	echo "usage: $0 [--database-url] CMD [ARGS...]" >&2
	exit 2
fi

# base_dir picks where the cluster lives: $PG_TMPDIR if set, else /dev/shm when it is a writable
# tmpfs with room to spare (creating a database there is ~7x faster than on a VM disk, and every
# database test creates one), else $TMPDIR. Docker's default 64 MB /dev/shm fails the size check.
base_dir() {
	if [[ -n ${PG_TMPDIR:-} ]]; then
		echo "$PG_TMPDIR"
		return
	fi
	local avail_kb
	if [[ -d /dev/shm && -w /dev/shm ]]; then
		avail_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
		if [[ $avail_kb =~ ^[0-9]+$ ]] && ((avail_kb >= 1024 * 1024)); then
			echo /dev/shm
			return
		fi
	fi
	echo "${TMPDIR:-/tmp}"
}

dir=$(mktemp -d "$(base_dir)/kommo-pg.XXXXXX")

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	# Dismiss the watchdog; if it has not written its pid yet it exits by itself within a second
	# of us, and its stop is then a no-op.
	local watchdog
	watchdog=$(cat "$dir/watchdog.pid" 2>/dev/null || true)
	if [[ $watchdog =~ ^[0-9]+$ ]]; then
		kill "$watchdog" 2>/dev/null || true
	fi
	"$here/pg.sh" stop "$dir" || echo "with-pg.sh: could not stop the cluster in $dir" >&2
	exit "$rc"
}
trap cleanup EXIT
# A trapped signal ends the script through cleanup with the conventional 128+N status.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# pg.sh wants an empty dir it can mark as its own; mktemp gave us exactly that.
if ! url=$("$here/pg.sh" start "$dir"); then
	exit 1
fi

# The watchdog polls our pid and stops the cluster if we vanish without running cleanup (SIGKILL).
# Its own session (where setsid exists) lets it survive a SIGKILL aimed at our whole process group.
# The subshell drops our traps before exec, or a signal to it would run our cleanup; the watchdog
# records its pid itself, since setsid may fork and make $! useless.
detach=()
if command -v setsid >/dev/null 2>&1; then
	detach=(setsid)
fi
(
	trap - EXIT INT TERM HUP
	exec ${detach[@]+"${detach[@]}"} bash -c '
		echo $$ >"$3/watchdog.pid"
		while kill -0 "$1" 2>/dev/null; do sleep 1; done
		"$2/pg.sh" stop "$3"
	' with-pg-watchdog "$$" "$here" "$dir"
) </dev/null >/dev/null 2>&1 &

export TEST_DATABASE_URL=$url
if ((export_database_url)); then
	export DATABASE_URL=$url
fi

set +e
"$@"
rc=$?
set -e
exit "$rc"

#!/usr/bin/env bash
# pg.sh: a throwaway PostgreSQL cluster for tests and the demo.
#
#   scripts/pg.sh start DIR   init a cluster in DIR (created if missing, must be empty), start it on
#                             127.0.0.1 at a free port, print its URL on stdout (also kept in DIR/url)
#   scripts/pg.sh stop DIR    stop it and delete DIR (only a DIR that start made; idempotent)
#   scripts/pg.sh url DIR     print the URL of a running cluster
#   scripts/pg.sh crash DIR   crash it (immediate shutdown: no checkpoint, as a power cut or an OOM kill
#                             leaves it) and start it again on the same port, running crash recovery
#
# The cluster trades durability for speed (fsync, synchronous_commit and full_page_writes off) and
# trusts every local and 127.0.0.1 connection: it is for tests only, never for data you want to keep.
# PostgreSQL refuses to run as root, so under root DIR is handed to the `postgres` system user and
# every server command runs through `runuser -u postgres --`.
#
# Environment: PG_BIN (directory holding initdb/pg_ctl/postgres) overrides the binary search;
# PG_START_TIMEOUT (seconds, default 30) bounds each start attempt; PG_SYNC_COMMIT=on keeps
# synchronous_commit on, so a commit survives a crash of the server (tests that crash it).
set -euo pipefail

readonly MARKER=.kommo-import-pg # proves DIR is ours before stop deletes it
readonly SUPERUSER=postgres

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start DIR | stop DIR | url DIR | crash DIR" >&2
	exit 2
}

# find_bin sets BIN to a directory holding initdb, pg_ctl and postgres: $PG_BIN, then PATH, then
# Debian's versioned directories (newest first), then pg_config --bindir.
find_bin() {
	local d candidates=()
	[[ -n ${PG_BIN:-} ]] && candidates+=("$PG_BIN")
	if command -v initdb >/dev/null 2>&1; then
		candidates+=("$(dirname "$(command -v initdb)")")
	fi
	# shellcheck disable=SC2012 # version directories are plain numbers
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -rn); do
		candidates+=("$d")
	done
	if command -v pg_config >/dev/null 2>&1; then
		candidates+=("$(pg_config --bindir 2>/dev/null || true)")
	fi
	for d in "${candidates[@]}"; do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			BIN=$d
			return
		fi
	done
	die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH, in /usr/lib/postgresql/*/bin or via \$PG_BIN.
  Install them (Debian/Ubuntu: apt-get install postgresql-15, or postgresql; macOS: brew install postgresql@15),
  or skip the throwaway cluster by pointing TEST_DATABASE_URL at an existing server, e.g.
  TEST_DATABASE_URL=postgres://user:pass@localhost:5432/postgres make test"
}

# as_owner runs a server command as the cluster owner: postgres under root, the caller otherwise.
# It runs from / because the owner may not be allowed into the caller's working directory.
as_owner() {
	if [[ $(id -u) -eq 0 ]]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# free_port prints a port in 20000-59999 nothing answers on. Another process may still take it before
# the server binds, so start retries on a bind failure rather than trusting this check.
free_port() {
	local port i
	for i in $(seq 1 50); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		# A refused connection means nothing listens there.
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "no free port found on 127.0.0.1 after 50 tries"
}

cmd_start() {
	local dir=$1
	find_bin
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	[[ -z $(ls -A "$dir") ]] || die "start: $dir is not empty"
	# A unix socket path must fit in 107 bytes; a deep DIR would make the server fail obscurely.
	((${#dir} + 20 < 100)) || die "start: $dir is too long for a unix socket path; use a shorter one (e.g. under /tmp)"
	touch "$dir/$MARKER"
	mkdir -p "$dir/data" "$dir/sock"
	if [[ $(id -u) -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "running as root, but there is no 'postgres' system user to run the server as (PostgreSQL refuses root); create one or run as a normal user"
		chown -R postgres: "$dir"
	fi
	chmod 700 "$dir/data"

	local log=$dir/initdb.log
	if ! as_owner "$BIN/initdb" -D "$dir/data" -U "$SUPERUSER" -A trust -E UTF8 --locale=C --no-sync \
		>"$log" 2>&1; then
		cat "$log" >&2
		die "start: initdb failed (log above)"
	fi
	# Trust only the socket and 127.0.0.1: nothing off this machine can connect.
	cat >"$dir/data/pg_hba.conf" <<-EOF
		local all all trust
		host  all all 127.0.0.1/32 trust
	EOF
	cat >>"$dir/data/postgresql.conf" <<-EOF

		# kommo-import throwaway test cluster: speed over durability.
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$dir/sock'
		max_connections = 200
		fsync = off
		synchronous_commit = ${PG_SYNC_COMMIT:-off}
		full_page_writes = off
		logging_collector = off
		log_min_messages = warning
	EOF
	[[ $(id -u) -ne 0 ]] || chown postgres: "$dir/data/pg_hba.conf"

	local attempt port
	for attempt in 1 2 3 4 5 6 7 8; do
		port=$(free_port)
		: >"$dir/server.log"
		[[ $(id -u) -ne 0 ]] || chown postgres: "$dir/server.log"
		if as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "${PG_START_TIMEOUT:-30}" \
			-o "-p $port" start >"$dir/pg_ctl.log" 2>&1; then
			local url="postgres://$SUPERUSER@127.0.0.1:$port/postgres?sslmode=disable"
			echo "$url" >"$dir/url"
			echo "$url"
			return
		fi
		# Another process took the port between the check and the bind: try another one.
		if grep -qiE 'could not bind|address already in use|could not create any TCP/IP sockets' "$dir/server.log"; then
			as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
			continue
		fi
		cat "$dir/pg_ctl.log" "$dir/server.log" >&2
		as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
		die "start: server did not start (logs above)"
	done
	cat "$dir/server.log" >&2
	die "start: no free port after $attempt attempts"
}

# running reports whether pid is a live process. A zombie counts as gone: it has exited and only
# waits for its parent (init, once pg_ctl is done) to reap it, which some container inits do late.
running() {
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ -n $state && $state != Z* ]]
}

cmd_stop() {
	local dir=$1
	[[ -d $dir ]] || return 0
	# start failed before marking it (e.g. no binaries): an empty dir is safe to remove.
	if [[ -z $(ls -A "$dir") ]]; then
		rmdir "$dir"
		return 0
	fi
	[[ -e $dir/$MARKER ]] || die "stop: $dir was not made by '$0 start'; refusing to delete it"
	if [[ -f $dir/data/postmaster.pid ]]; then
		find_bin
		# The postmaster's pid is the pid file's first line; read it now, the file goes away on stop.
		local pid i
		pid=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)
		# fast: roll back open transactions and disconnect; immediate if that hangs.
		if ! as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 10 stop >/dev/null 2>&1; then
			as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
		fi
		# pg_ctl returns once the pid file is gone, a moment before the process exits: wait for the
		# process itself so "stopped" means stopped; SIGKILL as the last resort.
		if [[ $pid =~ ^[0-9]+$ ]]; then
			for i in $(seq 1 100); do
				running "$pid" || break
				sleep 0.05
			done
			if running "$pid"; then
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
	fi
	rm -rf "$dir"
}

cmd_crash() {
	local dir=$1 port
	[[ -e $dir/$MARKER ]] || die "crash: $dir was not made by '$0 start'"
	find_bin
	port=$(sed -E 's|.*:([0-9]+)/.*|\1|' "$dir/url")
	as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
	as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "${PG_START_TIMEOUT:-30}" \
		-o "-p $port" start >"$dir/pg_ctl.log" 2>&1 || { cat "$dir/pg_ctl.log" "$dir/server.log" >&2; die "crash: server did not start again"; }
}

cmd_url() {
	local dir=$1
	[[ -f $dir/url ]] || die "url: no cluster in $dir"
	cat "$dir/url"
}

[[ $# -eq 2 ]] || usage
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
url) cmd_url "$2" ;;
crash) cmd_crash "$2" ;;
*) usage ;;
esac

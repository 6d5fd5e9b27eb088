#!/usr/bin/env bash
# s3.sh: a throwaway S3-compatible server (SeaweedFS) for tests and rehearsals.
#
#   scripts/s3.sh build       build `weed` once into the cache (below) and print its path
#   scripts/s3.sh start DIR   start it on 127.0.0.1 at free ports with fresh credentials, data in DIR
#                             (created if missing, must be empty); print the environment for tests
#                             (also kept in DIR/env): TEST_S3_ENDPOINT, TEST_S3_REGION,
#                             TEST_S3_ACCESS_KEY, TEST_S3_SECRET_KEY (may do anything) and
#                             TEST_S3_READONLY_ACCESS_KEY, TEST_S3_READONLY_SECRET_KEY (read and list only)
#   scripts/s3.sh stop DIR    stop it and delete DIR (only a DIR that start made; idempotent)
#   scripts/s3.sh env DIR     print the environment of a running server
#
# The server is SeaweedFS (github.com/seaweedfs/seaweedfs, Apache-2.0) at the version pinned below,
# built from the Go module proxy with the machine's Go: no download site, no Docker. The first build
# takes minutes (the README has the figures); the binary is kept in
#   ${KOMMO_IMPORT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kommo-import}/weed-<version>/weed
# and reused by every later start. WEED_BIN names another binary instead. One process runs the
# master, a volume server, the filer and the S3 gateway (`weed server -filer -s3`), each on its own
# free port on 127.0.0.1 (and their gRPC ports), so any number of them can run side by side.
# It is for tests only: no TLS, data in DIR, credentials printed.
#
# Environment: WEED_BIN, KOMMO_IMPORT_CACHE, GO (default go), S3_START_TIMEOUT (seconds, default 60).
set -euo pipefail

readonly WEED_MODULE=github.com/seaweedfs/seaweedfs
readonly WEED_VERSION=v0.0.0-20261109003541-7506e5f91cd6
readonly MARKER=.kommo-import-s3 # proves DIR is ours before stop deletes it
readonly REGION=us-east-1

die() {
	echo "s3.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 build | start DIR | stop DIR | env DIR" >&2
	exit 2
}

cache_dir() {
	echo "${KOMMO_IMPORT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kommo-import}/weed-$WEED_VERSION"
}

# cmd_build prints the path of a weed binary, building it first if the cache has none. The module
# is fetched through the Go module proxy and built inside its own module directory (its go.mod has
# a replace directive, which `go install pkg@version` refuses). A lock keeps two concurrent first
# runs from building twice; the binary appears by an atomic rename, never half-written.
cmd_build() {
	if [[ -n ${WEED_BIN:-} ]]; then
		[[ -x $WEED_BIN ]] || die "WEED_BIN=$WEED_BIN is not an executable"
		echo "$WEED_BIN"
		return
	fi
	local dir bin go=${GO:-go}
	dir=$(cache_dir)
	bin=$dir/weed
	if [[ -x $bin ]]; then
		echo "$bin"
		return
	fi
	command -v "$go" >/dev/null 2>&1 || die "go not found: it builds the test S3 server (SeaweedFS) on first use"
	mkdir -p "$dir"
	exec 9>"$dir/.lock"
	flock 9
	if [[ -x $bin ]]; then # built by another run while we waited
		echo "$bin"
		return
	fi
	echo "s3.sh: building SeaweedFS $WEED_VERSION (once; cached in $dir) ..." >&2
	local start=$SECONDS src
	src=$("$go" mod download -json "$WEED_MODULE@$WEED_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	[[ -n $src && -d $src ]] || die "could not fetch $WEED_MODULE@$WEED_VERSION through the Go module proxy"
	# -mod=readonly: the module's own go.sum pins every dependency. Built from its directory, so the
	# module is the main module and its replace directive applies. GOFLAGS from the caller (e.g.
	# -race, -cover) must not leak into this build.
	if ! (cd "$src" && GOFLAGS=-mod=readonly CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w" -o "$bin.tmp.$$" ./weed) >&2; then
		rm -f "$bin.tmp.$$"
		die "building SeaweedFS failed (output above)"
	fi
	mv -f "$bin.tmp.$$" "$bin"
	echo "s3.sh: built $bin in $((SECONDS - start)) s" >&2
	echo "$bin"
}

# port_free reports whether nothing answers on 127.0.0.1:$1.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_ports prints N distinct ports in 20000-29999 that are free, each with port+10000 free too
# (SeaweedFS's convention for gRPC ports, which we set explicitly all the same).
free_ports() {
	local n=$1 port i got=() p
	for i in $(seq 1 500); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 10000))
		for p in "${got[@]+"${got[@]}"}"; do
			[[ $p -eq $port ]] && continue 2
		done
		if port_free "$port" && port_free $((port + 10000)); then
			got+=("$port")
			((${#got[@]} == n)) && break
		fi
	done
	((${#got[@]} == n)) || die "no free ports found on 127.0.0.1"
	echo "${got[@]}"
}

# http_status prints the HTTP status of GET url (host 127.0.0.1), or 000 when nothing answers. It
# uses bash's /dev/tcp, so neither curl nor wget is needed.
http_status() {
	local port=$1 path=$2 line
	{
		exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 0
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$path" "$port" >&3
		IFS= read -r -t 5 line <&3 || true
		exec 3<&-
		echo "$line"
	} 2>/dev/null | awk '{ print $2 } END { if (NR == 0) print "000" }'
}

# http_body prints the body of GET url, like http_status.
http_body() {
	local port=$1 path=$2
	{
		exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 0
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$path" "$port" >&3
		timeout 5 cat <&3
		exec 3<&-
	} 2>/dev/null | sed '1,/^\r\{0,1\}$/d'
}

random_key() {
	od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

running() {
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ -n $state && $state != Z* ]]
}

cmd_start() {
	local dir=$1 weed
	weed=$(cmd_build)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	[[ -z $(ls -A "$dir") ]] || die "start: $dir is not empty"
	touch "$dir/$MARKER"
	mkdir -p "$dir/data"

	local ak sk rak rsk
	ak=AK$(random_key 9) sk=$(random_key 20) rak=RO$(random_key 9) rsk=$(random_key 20)
	# Two identities: one that may do anything (tests make and drop their own buckets), and one
	# that may only read and list (a policy that refuses writes).
	cat >"$dir/s3.json" <<-EOF
		{
		  "identities": [
		    {"name": "kommo-test", "credentials": [{"accessKey": "$ak", "secretKey": "$sk"}],
		     "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
		    {"name": "kommo-test-readonly", "credentials": [{"accessKey": "$rak", "secretKey": "$rsk"}],
		     "actions": ["Read", "List"]}
		  ]
		}
	EOF
	chmod 600 "$dir/s3.json"
	# Each bucket is a collection of volumes of its own; grow one volume at a time (the default
	# grows 7), so that the tests' many small buckets do not exhaust the volume slots. weed reads
	# master.toml from its working directory.
	cat >"$dir/master.toml" <<-EOF
		[master.volume_growth]
		copy_1 = 1
		copy_2 = 2
		copy_3 = 3
		copy_other = 1
	EOF

	local attempt ports master volume filer s3 pid status i
	for attempt in 1 2 3 4 5; do
		read -r master volume filer s3 <<<"$(free_ports 4)"
		: >"$dir/weed.log"
		# Volumes of 64 MB (written as data comes, never preallocated), at most 200: tests store
		# kilobytes in many buckets, the benchmark some hundred MB. A bucket is never made by an
		# upload (a missing one is NoSuchBucket, as on AWS). Iceberg and Lance catalogs off (they
		# would want ports of their own).
		(cd "$dir" && exec "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
			-master.port="$master" -master.port.grpc=$((master + 10000)) -master.volumeSizeLimitMB=64 \
			-volume.port="$volume" -volume.port.grpc=$((volume + 10000)) -volume.max=200 -volume.preStopSeconds=0 \
			-filer -filer.port="$filer" -filer.port.grpc=$((filer + 10000)) \
			-s3 -s3.port="$s3" -s3.port.grpc=$((s3 + 10000)) -s3.config="$dir/s3.json" \
			-s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false \
			</dev/null >>"$dir/weed.log" 2>&1) &
		pid=$!
		echo "$pid" >"$dir/weed.pid"
		# Ready when the master hands out a file id (a volume server has joined and a volume is
		# grown), the filer answers and the S3 gateway answers (403 to an unsigned request).
		local ok=0 deadline=$((SECONDS + ${S3_START_TIMEOUT:-60}))
		while ((SECONDS < deadline)); do
			running "$pid" || break
			if http_body "$master" /dir/assign | grep -q '"fid"' &&
				[[ $(http_status "$filer" /) != 000 ]] &&
				status=$(http_status "$s3" /) && [[ $status != 000 ]]; then
				ok=1
				break
			fi
			sleep 0.2
		done
		if ((ok)); then
			cat >"$dir/env" <<-EOF
				TEST_S3_ENDPOINT=http://127.0.0.1:$s3
				TEST_S3_REGION=$REGION
				TEST_S3_ACCESS_KEY=$ak
				TEST_S3_SECRET_KEY=$sk
				TEST_S3_READONLY_ACCESS_KEY=$rak
				TEST_S3_READONLY_SECRET_KEY=$rsk
			EOF
			cat "$dir/env"
			return
		fi
		# Stop what started before looking at why.
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 50); do
			running "$pid" || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		if grep -qiE 'address already in use|bind: ' "$dir/weed.log"; then
			rm -rf "${dir:?}/data" && mkdir -p "$dir/data"
			continue
		fi
		tail -n 40 "$dir/weed.log" >&2
		die "start: SeaweedFS did not become ready within ${S3_START_TIMEOUT:-60} s (log above)"
	done
	tail -n 40 "$dir/weed.log" >&2
	die "start: no free ports after $attempt attempts"
}

cmd_stop() {
	local dir=$1 pid i
	[[ -d $dir ]] || return 0
	if [[ -z $(ls -A "$dir") ]]; then
		rmdir "$dir"
		return 0
	fi
	[[ -e $dir/$MARKER ]] || die "stop: $dir was not made by '$0 start'; refusing to delete it"
	pid=$(cat "$dir/weed.pid" 2>/dev/null || true)
	if [[ $pid =~ ^[0-9]+$ ]] && running "$pid"; then
		# The data is thrown away: a graceful stop gets 3 seconds, then SIGKILL.
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if running "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			for i in $(seq 1 50); do
				running "$pid" || break
				sleep 0.1
			done
		fi
	fi
	rm -rf "$dir"
}

cmd_env() {
	[[ -f $1/env ]] || die "env: no server in $1"
	cat "$1/env"
}

case ${1:-} in
build)
	[[ $# -eq 1 ]] || usage
	cmd_build
	;;
start | stop | env)
	[[ $# -eq 2 ]] || usage
	"cmd_$1" "$2"
	;;
*) usage ;;
esac

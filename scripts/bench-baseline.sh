#!/usr/bin/env bash
# Issue 11's daemon-side goals, each measured in one run by one command:
#
#   1. 16 clients, containers (CreateEndpoint+Join): hostpass against the
#      no-op driver, interleaved rounds (goal: 0.5x or more); the floor
#      driver's figure beside it, for information.
#   2. 1 client: hostpass against the floor driver, a no-op driver that
#      appends and fsyncs a 512-byte line per call in the audit log's folder
#      (goal: time per container within 1.15x of the floor's, i.e. a rate
#      ratio of 0.87 or more).
#   3. Memory: a fresh daemon's peak RSS (VmHWM) after CALLS container
#      lifecycles (create, join, leave, delete) from 16 clients (goal: under
#      20 MiB), split into its anonymous memory (heap, stacks) and the mapped
#      binary, which is file-backed and shared; then, for comparison, a fresh
#      daemon after CALLS creates and joins whose endpoints it holds until the
#      run ends (--op container), which no dockerd leaves behind.
#
# The daemon runs with serve's defaults (log level info, audit log on the
# disk under /var/tmp, every create and join fsynced before its reply), with
# --watch=false: no dockerd is involved. Needs bin/hostpass (make build) and
# nothing else; any user may run it.
#
#   scripts/bench-baseline.sh                 # ROUNDS=5 DUR=3s CALLS=20000
#   ROUNDS=10 DUR=5s scripts/bench-baseline.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/hostpass}
rounds=${ROUNDS:-5} dur=${DUR:-3s} calls=${CALLS:-20000}
dir=$(mktemp -d /var/tmp/hostpass-bench-baseline.XXXXXX)
pid=
stop_daemon() {
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}
trap 'stop_daemon; rm -rf "$dir"' EXIT

# start_daemon NAME: a daemon with its own socket, audit log and state.
start_daemon() {
	"$bin" serve --socket "$dir/$1.sock" --audit-log "$dir/$1/audit.jsonl" --state-dir "$dir/$1-state" \
		--watch=false >"$dir/$1.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do [ -S "$dir/$1.sock" ] && return 0; sleep 0.05; done
	echo "bench-baseline: the daemon did not start; its log:" >&2
	cat "$dir/$1.log" >&2
	exit 1
}

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status" 2>/dev/null; }

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), audit log on $(df --output=fstype "$dir" | tail -1) ($dir)"
start_daemon speed
for clients in 16 1; do
	echo "== $clients client(s): $rounds rounds of $dur a side"
	"$bin" bench --baseline --socket "$dir/speed.sock" --op container --clients "$clients" \
		--duration "$dur" --rounds "$rounds" --fsync-dir "$dir/speed"
done
stop_daemon

# memory OP WHAT: a fresh daemon's RSS after CALLS calls of OP from 16 clients.
memory() {
	echo "== memory: a fresh daemon, $calls $2 from 16 clients (--op $1)"
	start_daemon "mem-$1"
	local idle hwm rss anon file peak_anon sampler
	idle=$(kib VmRSS)
	(
		while kill -0 "$pid" 2>/dev/null; do
			kib RssAnon
			sleep 0.1
		done
	) >"$dir/anon.samples" &
	sampler=$!
	"$bin" bench --socket "$dir/mem-$1.sock" --op "$1" --clients 16 --calls "$calls"
	hwm=$(kib VmHWM) rss=$(kib VmRSS) anon=$(kib RssAnon) file=$(kib RssFile)
	stop_daemon
	wait "$sampler" 2>/dev/null || true
	peak_anon=$(sort -n "$dir/anon.samples" | tail -1)
	awk -v idle="$idle" -v hwm="$hwm" -v rss="$rss" -v anon="$anon" -v file="$file" -v pa="$peak_anon" -v goal="$3" 'BEGIN {
		printf "idle RSS %.1f MiB; after the load RSS %.1f MiB (anonymous %.1f, binary and other files %.1f)\n", idle/1024, rss/1024, anon/1024, file/1024
		printf "peak RSS (VmHWM) %.1f MiB; peak anonymous (sampled every 0.1 s) %.1f MiB%s\n", hwm/1024, pa/1024, goal
	}'
}
memory lifecycle "container lifecycles (create, join, leave, delete)" "; goal: under 20 MiB"
memory container "containers created and joined, held until the run ends, then deleted" " (for comparison: no host holds them)"

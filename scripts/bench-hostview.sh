#!/usr/bin/env bash
# Measures what the host's size costs a join: the bytes of log per join and
# the join rate, on a host with 60 containers' veths and one bridge (62
# links), for two daemon binaries in one run (BEFORE and AFTER, e.g. the
# binary of the last release and bin/hostpass); then again while a veth comes
# and goes every 100 ms, as on a host where containers start and stop.
#
# The "host" is a private network namespace: lo, a bridge br0 with an
# address, and 60 veths enslaved to it whose peers sit in a second namespace,
# as a container's would. The daemons run in it (nsenter --net; hostview reads
# the namespace it runs in); their sockets are in a temp dir, not
# /run/docker/plugins, so no dockerd picks them up. Their logs are on the real
# disk (/var/tmp). `hostpass bench` drives joins over each socket with 1 and
# with 16 clients, alternating the binaries, and the script prints the rates,
# the average endpoint.join line, the host.view lines, and log bytes per join.
#
# Usage: scripts/bench-hostview.sh BEFORE-BINARY [AFTER-BINARY]
# Settings (environment): VETHS (60), DURATION (5s), ROUNDS (3).
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-hostview: run as root (network namespaces)" >&2; exit 1; }
[ $# -ge 1 ] || { echo "usage: $0 BEFORE-BINARY [AFTER-BINARY]" >&2; exit 2; }
export PATH="$PATH:/usr/local/go/bin"

VETHS=${VETHS:-60}
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
make --no-print-directory build >/dev/null
before=$(realpath "$1")
after=$(realpath "${2:-bin/hostpass}")
bench=$PWD/bin/hostpass

ns=hpview$$
peers=hpviewc$$
run=$(mktemp -d /var/tmp/hostpass-bench-hostview.XXXXXX)
pids=()
cleanup() {
	set +e
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		wait "$pid" 2>/dev/null
	done
	ip netns del "$ns" 2>/dev/null
	ip netns del "$peers" 2>/dev/null
	rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip netns add "$peers"
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge
ip -n "$ns" addr add 172.30.0.1/16 dev br0
ip -n "$ns" link set br0 up
for i in $(seq "$VETHS"); do
	ip -n "$ns" link add "veth$i" type veth peer name "c$i" netns "$peers"
	ip -n "$ns" link set "veth$i" master br0 up
	ip -n "$peers" link set "c$i" up # carrier: the host side gets its IPv6 link-local address, as with Docker
done
sleep 2 # link-local addresses settle
links=$(ip -n "$ns" -o link | wc -l)

# start NAME BINARY: a daemon in the namespace, serving $run/NAME.sock.
start() {
	local name=$1 bin=$2 sock=$run/$1.sock
	nsenter --net="/run/netns/$ns" "$bin" serve --socket "$sock" --audit-log "$run/$name/audit.jsonl" \
		--state-dir "$run/$name-state" --watch=false --log-level warning >"$run/$name.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [ -S "$sock" ] && return; sleep 0.1; done
	echo "bench-hostview: $name did not listen; its log:" >&2
	cat "$run/$name.log" >&2
	exit 1
}
start before "$before"
start after "$after"
start before-churn "$before"
start after-churn "$after"

# load NAME CLIENTS: one bench run, its rate.
load() {
	"$bench" bench --socket "$run/$1.sock" --op join --clients "$2" --duration "$DURATION" --json |
		sed -n 's/.*"rate":\([0-9.]*\).*/\1/p'
}
echo "host: $links links ($VETHS veths on br0, br0, lo); joins for $DURATION per run, $ROUNDS rounds"
for clients in 1 16; do
	for r in $(seq "$ROUNDS"); do
		for name in before after; do
			printf '%-6s clients=%-2s round=%s  %8.0f joins/s\n' "$name" "$clients" "$r" "$(load "$name" "$clients")"
		done
	done
done

# Churn: a veth comes and goes every 100 ms, as containers starting and
# stopping make them, while one client joins.
churn() {
	while :; do
		ip -n "$ns" link add vx type veth peer name cx netns "$peers"
		ip -n "$ns" link set vx master br0 up
		sleep 0.05
		ip -n "$ns" link del vx
		sleep 0.05
	done
}
churn &
churner=$!
pids+=("$churner")
for r in $(seq "$ROUNDS"); do
	for name in before-churn after-churn; do
		printf '%-12s clients=1  round=%s  %8.0f joins/s\n' "$name" "$r" "$(load "$name" 1)"
	done
done
kill "$churner"

for name in before after before-churn after-churn; do
	log=$run/$name/audit.jsonl
	files=("$log".0* "$log") # rotated files (64 MiB each), oldest first, then the current one
	cat "${files[@]}" | LC_ALL=C awk -v name="$name" '
		/"event":"endpoint.join"/ { joins++; joinBytes += length($0) + 1 }
		/"event":"host.view"/     { views++; viewBytes += length($0) + 1 }
		{ all += length($0) + 1 }
		END {
			printf "%-12s %d joins, endpoint.join line %.0f bytes on average; %d host.view lines of %.0f bytes; %.0f log bytes per join\n",
				name, joins, joinBytes / joins, views, (views ? viewBytes / views : 0), all / joins
		}'
	"$after" audit verify "$run/$name" | cut -c1-60
done

#!/usr/bin/env bash
# Checks the group-commit requirement: under 16 concurrent joins, the audited
# throughput must stay at least 50% of the same daemon auditing to a no-fsync
# sink, measured in one run.
#
# It starts two daemons of one binary: one with its audit log on the real disk
# (under /var/tmp), one with its audit log on a tmpfs (under /dev/shm, where
# fsync costs nothing: the no-fsync sink). Their sockets are in a temp dir, not
# /run/docker/plugins, so no dockerd picks them up. `hostpass bench` loads them
# in turn: one 1-client run of each for reference, then 16-client runs
# alternating disk, tmpfs, disk, tmpfs to spread the machine's noise. It
# prints both rates, p50/p99 and the ratio disk/tmpfs against 0.5, and exits 0
# whether that passes or not (non-zero only if it could not measure).
#
# About a minute. Settings (environment): CLIENTS (16), DURATION (10s),
# ROUNDS (2), REF_DURATION (3s, the 1-client runs), LOG_LEVEL (info, the
# daemons' default), HOSTPASS_DAEMON (the daemon binary; default the
# bin/hostpass built here, which also runs the load).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-audit: run as root (the daemons read the host's links over netlink)" >&2; exit 1; }
export PATH="$PATH:/usr/local/go/bin"

CLIENTS=${CLIENTS:-16}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
REF_DURATION=${REF_DURATION:-3s}
LOG_LEVEL=${LOG_LEVEL:-info}
THRESHOLD=0.5

make --no-print-directory build >/dev/null
bin=$PWD/bin/hostpass
daemon=${HOSTPASS_DAEMON:-$bin}

disk=$(mktemp -d /var/tmp/hostpass-bench-audit.XXXXXX)
shm=$(mktemp -d /dev/shm/hostpass-bench-audit.XXXXXX)
run=$(mktemp -d /tmp/hostpass-bench-run.XXXXXX) # sockets, state, daemon logs
pids=()
cleanup() {
	set +e
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && { echo "bench-audit: daemon $pid ignored SIGTERM for 5s; killing it" >&2; kill -KILL "$pid"; }
		wait "$pid" 2>/dev/null
	done
	rm -rf "$disk" "$shm" "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fstype() { stat -f -c %T "$1"; }
[ "$(fstype "$shm")" = tmpfs ] || { echo "bench-audit: /dev/shm is $(fstype "$shm"), not a tmpfs; no no-fsync sink to compare with" >&2; exit 1; }
[ "$(fstype "$disk")" != tmpfs ] || { echo "bench-audit: /var/tmp is a tmpfs; the disk side would not fsync to a disk" >&2; exit 1; }

# start NAME AUDITDIR: a daemon serving $run/NAME.sock, auditing to AUDITDIR.
start() {
	local name=$1 dir=$2 sock=$run/$1.sock
	"$daemon" serve --socket "$sock" --audit-log "$dir/audit.jsonl" --state-dir "$run/$name-state" \
		--log-level "$LOG_LEVEL" >"$run/$name.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		[ -S "$sock" ] && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench-audit: the $name daemon did not come up on $sock; its log:" >&2
	cat "$run/$name.log" >&2
	exit 1
}

# bench NAME CLIENTS DURATION: one run; prints its summary line and records it.
failed=0
bench() {
	local name=$1 clients=$2 duration=$3 line
	if ! line=$("$bin" bench --socket "$run/$name.sock" --clients "$clients" --duration "$duration" 2>"$run/bench.err"); then
		failed=1
		[ -n "$line" ] || { echo "bench-audit: bench against $name failed:" >&2; cat "$run/bench.err" >&2; exit 1; }
		sed 's/^/    /' "$run/bench.err"
	fi
	printf '  %-6s %s\n' "$name" "$line"
	echo "$name $line" >>"$run/results"
}

# field NAME CLIENTS KEY: the mean of KEY over NAME's runs with CLIENTS clients.
field() {
	awk -v name="$1" -v clients="clients=$2" -v key="$3" '
		$1 == name && $3 == clients {
			for (i = 2; i <= NF; i++) if (index($i, key "=") == 1) {
				v = substr($i, length(key) + 2); sub(/(\/s|ms)$/, "", v); sum += v; n++
			}
		}
		END { if (n) printf "%.3f", sum / n; else print "nan" }' "$run/results"
}

echo "== hostpass audit group-commit check, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "   daemon:  $("$daemon" version), $daemon"
echo "   load:    $("$bin" version), $bin, from tree $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo "   machine: $(uname -r), $(nproc) CPUs"
echo "   disk:    $disk ($(fstype "$disk"), $(df --output=source "$disk" | tail -n 1))"
echo "   tmpfs:   $shm ($(fstype "$shm"))"
start disk "$disk"
start tmpfs "$shm"

echo "== reference: 1 client, $REF_DURATION each"
bench disk 1 "$REF_DURATION"
bench tmpfs 1 "$REF_DURATION"
echo "== $CLIENTS clients, $DURATION each, $ROUNDS rounds alternating"
for _ in $(seq "$ROUNDS"); do
	bench disk "$CLIENTS" "$DURATION"
	bench tmpfs "$CLIENTS" "$DURATION"
done

echo "== summary (mean of the runs; rate is successful joins per second)"
printf '  %-8s %-8s %12s %10s %10s\n' clients sink rate p50_ms p99_ms
for clients in 1 "$CLIENTS"; do
	for name in disk tmpfs; do
		printf '  %-8s %-8s %12s %10s %10s\n' "$clients" "$name" \
			"$(field $name "$clients" rate)" "$(field $name "$clients" p50)" "$(field $name "$clients" p99)"
	done
done
ratio() { awk -v d="$(field disk "$1" rate)" -v t="$(field tmpfs "$1" rate)" 'BEGIN { if (t > 0) printf "%.3f", d / t; else print "nan" }'; }
echo "  ratio disk/tmpfs: 1 client $(ratio 1), $CLIENTS clients $(ratio "$CLIENTS")"
r=$(ratio "$CLIENTS")
if [ "$failed" = 1 ]; then
	echo "FAIL: some calls failed (see above); the ratio $r is not a valid measurement"
elif awk -v r="$r" -v t="$THRESHOLD" 'BEGIN { exit !(r >= t) }'; then
	echo "PASS: with $CLIENTS concurrent joins, audited throughput is $r of the no-fsync sink's (required: at least $THRESHOLD)"
else
	echo "FAIL: with $CLIENTS concurrent joins, audited throughput is $r of the no-fsync sink's (required: at least $THRESHOLD)"
fi

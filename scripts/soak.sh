#!/usr/bin/env bash
# Soak: does the daemon's memory grow while containers churn? Issue 11 asks
# for no growth over 10 minutes with the watcher on.
#
# Starts a private dockerd in a network namespace of its own (as the
# end-to-end suite and scripts/demo.sh do), hostpass as its legacy plugin
# with serve's defaults and the watcher on, and a hostpass network. Then, for
# MINUTES (default 10), two loops run `docker run --rm busybox true`, one on
# the hostpass network (CreateEndpoint, Join, Leave, DeleteEndpoint: four
# audited calls) and one with --network host (the watcher's host.join and
# host.leave). Every 10 s it samples the daemon's RSS, its anonymous part,
# its threads and open files, and from its Prometheus metrics (--metrics on a
# socket in the work folder) its goroutines and the garbage collector's heap
# goal, which follows the live heap (twice it, at GOGC=100): RSS alone also
# moves with garbage not yet collected and pages not yet returned. At the end it prints the first, last and
# largest RSS, compares the mean of the last third of the samples with the
# first third's, leaving out the first minute (the heap grows to its
# working size while the first containers come and go) when the soak is 3
# minutes or longer, and verifies the audit log. Everything is stopped by pid and
# removed; the samples and logs stay in the folder it names.
#
#   make build && sudo scripts/soak.sh              # 10 minutes
#   sudo MINUTES=2 scripts/soak.sh
#   sudo DOCKERD=/path/to/dockerd RUNC=/path/to/runc scripts/soak.sh   # another engine (make engines)
#
# Exit status 0 when RSS did not grow (the last third's mean within 5% of the
# first third's: the GC's saw-tooth moves RSS by about that), 1 when it grew.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "soak: run as root: it starts a dockerd and serves a socket in /run/docker/plugins" >&2; exit 1; }
minutes=${MINUTES:-10}
[[ "$minutes" =~ ^[1-9][0-9]*$ ]] || { echo "soak: MINUTES=$minutes is not a whole number of minutes; accepted: 1 or more" >&2; exit 2; }
bin=${BIN:-bin/hostpass}
[[ "$bin" = /* ]] || bin=$PWD/$bin
[ -x "$bin" ] || { echo "soak: $bin is missing: run make build" >&2; exit 1; }
dockerd=${DOCKERD:-dockerd}

name=hpsoak$$
work=$(mktemp -d /tmp/hostpass-soak.XXXXXX)
socket=/run/docker/plugins/$name.sock
image=hostpass-soak-busybox:latest
plugin_pid= dockerd_pid= churn_pids=()
export DOCKER_HOST="unix://$work/d.sock"

mounts_under() {
	awk -v dir="$1" '$5 == dir || index($5, dir "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
cleanup() {
	set +e
	for p in "${churn_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	if [ -n "$dockerd_pid" ]; then
		for c in $(docker ps -aq 2>/dev/null); do docker rm -f "$c" >/dev/null 2>&1; done
		# Without its plugin, dockerd would wait for the socket to come back.
		[ -n "$plugin_pid" ] && timeout 30 docker network rm "$name" >/dev/null 2>&1
	fi
	[ -n "$plugin_pid" ] && kill "$plugin_pid" 2>/dev/null && wait "$plugin_pid"
	if [ -n "$dockerd_pid" ]; then
		kill "$dockerd_pid"
		for _ in $(seq 50); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$dockerd_pid" 2>/dev/null; then
			kill -9 "$dockerd_pid"
			[ -f "$work/exec/containerd/containerd.pid" ] && kill -9 "$(cat "$work/exec/containerd/containerd.pid")"
		fi
		wait "$dockerd_pid" 2>/dev/null
	fi
	ip netns del "$name" 2>/dev/null
	for m in $(mounts_under "$work"); do umount -l "$m"; done
	if [ -n "$(mounts_under "$work")" ]; then
		echo "soak: still mounted under $work:" $(mounts_under "$work") >&2
	else
		rm -rf --one-file-system "$work/data" "$work/exec" "$work/rootfs"
	fi
	rm -f "$socket"
	echo "== kept in $work: samples.tsv, hostpass.log, dockerd.log, audit/"
}
trap cleanup EXIT

echo "== a private dockerd ($("$dockerd" --version)) in network namespace $name"
ip netns add "$name"
ip -n "$name" link set lo up
runtime=()
[ -n "${RUNC:-}" ] && runtime=(--add-runtime "soak-runc=$RUNC" --default-runtime soak-runc)
proxy=()
[ -n "${DOCKERD:-}" ] && [ -x "$(dirname "$DOCKERD")/docker-proxy" ] && proxy=(--userland-proxy-path "$(dirname "$DOCKERD")/docker-proxy")
nsenter --net="/run/netns/$name" "$dockerd" --data-root "$work/data" --exec-root "$work/exec" \
	-H "$DOCKER_HOST" --pidfile "$work/d.pid" "${runtime[@]}" "${proxy[@]}" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
docker info >/dev/null || { echo "soak: dockerd did not start; see $work/dockerd.log" >&2; exit 1; }

mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/true"
tar -C "$work/rootfs" -c . | docker import - "$image" >/dev/null

echo "== hostpass (driver $name): serve's defaults, the watcher on this dockerd"
nsenter --net="/run/netns/$name" "$bin" serve --socket "$socket" --audit-log "$work/audit/audit.jsonl" \
	--state-dir "$work/state" --docker-socket "$work/d.sock" --metrics "unix://$work/metrics.sock" >"$work/hostpass.log" 2>&1 &
plugin_pid=$!
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done
[ -S "$socket" ] || { echo "soak: hostpass did not start; see $work/hostpass.log" >&2; exit 1; }
docker network create -d "$name" --ipam-driver null "$name" >/dev/null

churn() { # churn NETWORK: containers on it until killed; counts them in $work/count.NETWORK
	local n=0
	while :; do
		docker run --rm --network "$1" "$image" true >/dev/null
		n=$((n + 1))
		echo "$n" >"$work/count.$1"
	done
}
churn "$name" &
churn_pids+=($!)
churn host &
churn_pids+=($!)

status() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$plugin_pid/status"; }
metric() { awk -v m="$1" '$1 == m { printf "%d", $2 / 1024 }' "$work/metrics.txt"; }
sample() {
	curl -sf --unix-socket "$work/metrics.sock" http://hostpass/metrics >"$work/metrics.txt" || : >"$work/metrics.txt"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SECONDS" "$(status VmRSS)" "$(status RssAnon)" "$(status Threads)" \
		"$(find "/proc/$plugin_pid/fd" -mindepth 1 | wc -l)" "$(awk '$1 == "go_goroutines" { print $2 }' "$work/metrics.txt")" \
		"$(metric go_memstats_next_gc_bytes)"
}
echo "== churning for $minutes minutes; sampling every 10 s (seconds, RSS KiB, anonymous KiB, threads, open files, goroutines, heap goal KiB)"
printf 'seconds\trss_kib\tanon_kib\tthreads\tfds\tgoroutines\theap_goal_kib\n' >"$work/samples.tsv"
SECONDS=0
while [ "$SECONDS" -lt $((minutes * 60)) ]; do
	sleep 10
	kill -0 "$plugin_pid" 2>/dev/null || { echo "soak: hostpass exited; see $work/hostpass.log" >&2; exit 1; }
	sample | tee -a "$work/samples.tsv"
done
for p in "${churn_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
churn_pids=()
echo "== containers run: $(cat "$work/count.$name" 2>/dev/null || echo 0) on the hostpass network, $(cat "$work/count.host" 2>/dev/null || echo 0) with --network host"
echo "== peak RSS (VmHWM) $(status VmHWM) KiB"

grew=0
warmup=0
[ "$minutes" -ge 3 ] && warmup=60
awk -F'\t' -v warmup="$warmup" 'NR > 1 { t[++n] = $1; rss[n] = $2; anon[n] = $3; thr[n] = $4; fds[n] = $5; gor[n] = $6; goal[n] = $7 }
END {
	for (i = 1; i <= n; i++) { if (rss[i] > max) max = rss[i]; if (t[i] <= warmup) first = i }
	first++
	third = int((n - first + 1) / 3); if (third < 1) third = 1
	for (i = first; i < first + third; i++) { a += rss[i]; aa += anon[i]; ga += goal[i] }
	for (i = n - third + 1; i <= n; i++) { b += rss[i]; ba += anon[i]; gb += goal[i] }
	a /= third; b /= third; aa /= third; ba /= third; ga /= third; gb /= third
	printf "RSS: first %.1f MiB, last %.1f MiB, max %.1f MiB (%d samples)\n", rss[1]/1024, rss[n]/1024, max/1024, n
	printf "after %d s of warm-up: mean of the first third %.1f MiB (anonymous %.1f), of the last third %.1f MiB (anonymous %.1f): %+.1f%%\n", warmup, a/1024, aa/1024, b/1024, ba/1024, (b/a - 1) * 100
	printf "heap goal (twice the live heap): mean of the first third %.1f MiB, of the last third %.1f MiB: %+.1f%%\n", ga/1024, gb/1024, (ga ? (gb/ga - 1) * 100 : 0)
	printf "threads %d -> %d, open files %d -> %d, goroutines %d -> %d\n", thr[1], thr[n], fds[1], fds[n], gor[1], gor[n]
	if (b > a * 1.05) { print "RSS grew"; exit 1 }
	print "RSS did not grow"
}' "$work/samples.tsv" || grew=1

# A docker run in flight when its loop stopped still finishes; then remove
# the network while its plugin still answers.
for _ in $(seq 60); do [ -z "$(docker ps -aq)" ] && break; sleep 0.5; done
for c in $(docker ps -aq); do docker rm -f "$c" >/dev/null; done
docker network rm "$name" >/dev/null
kill "$plugin_pid" && wait "$plugin_pid" || true
plugin_pid=
echo "== $("$bin" audit verify "$work/audit/" | cut -c1-200)"
exit "$grew"

#!/usr/bin/env bash
# Shows hostpass working for real: starts the plugin daemon, creates a
# hostpass network, runs a container on it and one with --network host,
# removes the network and prints the audit records; the log is signed, and
# the demo verifies it and one container's proof with the public key. It uses the machine's Docker when one answers, and
# otherwise starts a private dockerd in its own network namespace (as the
# end-to-end tests do) and stops it afterwards, leaving nothing mounted. Its
# logs, the audit log and hostpass's state stay in the folder it names.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root: it serves a socket in /run/docker/plugins and may start a dockerd" >&2; exit 1; }
scripts/deps.sh
export PATH="$PATH:/usr/local/go/bin"
make --no-print-directory build

name=hpdemo$$
work=$(mktemp -d /tmp/hostpass-demo.XXXXXX)
socket=/run/docker/plugins/$name.sock
image=hostpass-demo-busybox:latest
plugin_pid= dockerd_pid=
docker_socket=/var/run/docker.sock
in_host_netns=() # hostpass runs in the network namespace its dockerd calls "the host"
# mounts_under DIR lists the mount points at or below DIR, deepest first.
# (umount -R on a folder that is not itself a mount point unmounts nothing,
# and dockerd leaves exec-root/netns/default, an nsfs mount, behind.)
mounts_under() {
	awk -v dir="$1" '$5 == dir || index($5, dir "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
cleanup() {
	set +e
	docker network rm "$name" >/dev/null 2>&1
	[ -n "$plugin_pid" ] && kill "$plugin_pid" && wait "$plugin_pid"
	if [ -n "$dockerd_pid" ]; then
		kill "$dockerd_pid"
		for _ in $(seq 50); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$dockerd_pid" 2>/dev/null; then
			kill -9 "$dockerd_pid"
			# dockerd stops its containerd itself, unless killed.
			[ -f "$work/exec/containerd/containerd.pid" ] && kill -9 "$(cat "$work/exec/containerd/containerd.pid")"
		fi
		ip netns del "$name"
		for m in $(mounts_under "$work"); do umount -l "$m"; done
		if [ -n "$(mounts_under "$work")" ]; then
			echo "demo: still mounted under $work:" $(mounts_under "$work") >&2
		else
			# Docker's data and exec roots and the image's staging folder go;
			# the logs, the audit log and hostpass's state stay.
			rm -rf --one-file-system "$work/data" "$work/exec" "$work/rootfs"
		fi
	fi
	rm -f "$socket"
	echo "== logs kept in $work: hostpass.log${dockerd_pid:+, dockerd.log}, audit.jsonl"
}
trap cleanup EXIT

if docker info >/dev/null 2>&1; then
	echo "== using the machine's Docker"
else
	echo "== no Docker answers here: starting a private dockerd in network namespace $name"
	ip netns add "$name"
	ip -n "$name" link set lo up
	nsenter --net="/run/netns/$name" dockerd --data-root "$work/data" --exec-root "$work/exec" \
		-H "unix://$work/docker.sock" --pidfile "$work/docker.pid" >"$work/dockerd.log" 2>&1 &
	dockerd_pid=$!
	export DOCKER_HOST="unix://$work/docker.sock"
	docker_socket="$work/docker.sock"
	in_host_netns=(nsenter --net="/run/netns/$name")
	for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
	docker info >/dev/null || { echo "demo: dockerd did not start; see $work/dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
	echo "== building a local busybox image (nothing is pulled)"
	rootfs="$work/rootfs"
	mkdir -p "$rootfs/bin"
	cp /bin/busybox "$rootfs/bin/busybox"
	for app in sh ip ls cat sleep true; do ln -s busybox "$rootfs/bin/$app"; done
	tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
fi

echo "== a signing key for the log: $work/sign.key (the daemon's), $work/sign.key.pub (the auditor's)"
bin/hostpass audit keygen --sign "$work/sign.key"
echo "== starting hostpass (driver name $name)"
"${in_host_netns[@]}" bin/hostpass serve --socket "$socket" --audit-log "$work/audit.jsonl" --state-dir "$work/state" \
	--docker-socket "$docker_socket" --sign-key "$work/sign.key" >"$work/hostpass.log" 2>&1 &
plugin_pid=$!
for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done

set -x
docker network create -d "$name" --ipam-driver null -o tag=demo "$name"
docker run --rm --name "$name-web" --network "$name" "$image" ip -o link
docker run --rm --name "$name-hostmode" --network host "$image" sleep 1
docker network rm "$name"
{ set +x; } 2>/dev/null
sleep 1 # the watcher's records follow Docker's events
echo "== stopping hostpass: a clean stop ends with a signed checkpoint, the key's step and audit.stop"
kill "$plugin_pid" && wait "$plugin_pid"
plugin_pid=

echo "== audit records ($work/audit.jsonl)"
cat "$work/audit.jsonl"
echo "== the same, as hostpass audit show prints them"
bin/hostpass audit show "$work/audit.jsonl"
echo "== hostpass audit verify, with the public key alone"
bin/hostpass audit verify --pubkey "$work/sign.key.pub" "$work/audit.jsonl"
echo "== one container's story as a proof anyone can check offline"
bin/hostpass audit prove --container "$name-hostmode" -o "$work/hostmode.proof" "$work/audit.jsonl"
bin/hostpass audit check-proof --pubkey "$work/sign.key.pub" "$work/hostmode.proof"
echo "== the daemon's log is $work/hostpass.log"

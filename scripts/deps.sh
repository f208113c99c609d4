#!/usr/bin/env bash
# Installs what building, the demo and the tests need on Debian, if missing:
# Docker's engine (docker.io), a static busybox for local test images (no
# image can be pulled), Docker's registry for `docker plugin install` tests,
# iproute2 for network namespaces, make and git; libseccomp-dev and
# pkg-config to build runc with seccomp for Docker Engine 29 (engines.sh);
# rsyslog, the syslog collector the e2e suite runs (it never starts the system's);
# prometheus (and promtool), the scraper the e2e suite runs, and curl to ask it.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "deps: run as root (apt-get install)" >&2; exit 1; }
need=()
command -v dockerd >/dev/null || need+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v ip >/dev/null || need+=(iproute2)
command -v make >/dev/null || need+=(make)
command -v git >/dev/null || need+=(git)
dpkg -s libseccomp-dev >/dev/null 2>&1 || need+=(libseccomp-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v gcc >/dev/null || need+=(gcc) # cgo: go test -race, and runc (scripts/engines.sh)
command -v rsyslogd >/dev/null || need+=(rsyslog)
command -v prometheus >/dev/null || need+=(prometheus)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "deps: Go is needed to build hostpass (go.mod names the version); put it on PATH" >&2; exit 1; }

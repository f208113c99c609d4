#!/usr/bin/env bash
# Builds Docker Engine 29 (dockerd, docker-proxy) and runc from their Go
# modules, at the
# versions pinned in scripts/engines.env, once, into a cache outside the
# repository, and prints the folder holding dockerd, docker-proxy and runc:
#
#   $HOSTPASS_ENGINES_CACHE/<dockerd version>-<runc version>/bin
#
# (HOSTPASS_ENGINES_CACHE defaults to /var/cache/hostpass-engines). A later
# run with the same pins reuses the build: the folder is complete only once
# its stamp file names both versions, and a build goes to a temporary folder
# that is renamed into place, so an interrupted build is never taken for a
# finished one. The first build took 3 minutes on 2 cores here with the
# modules already downloaded, about 5 with the downloads.
#
#   scripts/engines.sh              build if needed, print the bin folder
#   scripts/engines.sh --print-dir  print the bin folder, build nothing
#
# Needs Go, and for runc's seccomp support cgo with libseccomp-dev and
# pkg-config (scripts/deps.sh installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=engines.env
. "$here/engines.env"

cache="${HOSTPASS_ENGINES_CACHE:-/var/cache/hostpass-engines}"
dir="$cache/$DOCKERD_VERSION-$RUNC_VERSION"
stamp="$dir/stamp"
# What a finished build holds; a change here (a version, a flag) rebuilds.
want="dockerd,docker-proxy github.com/moby/moby/v2@$DOCKERD_VERSION -X Version; runc github.com/opencontainers/runc@$RUNC_VERSION -tags seccomp"

case "${1:-}" in
--print-dir) echo "$dir/bin"; exit 0 ;;
"") ;;
*) echo "engines: unknown argument ${1}; accepted: none, or --print-dir" >&2; exit 2 ;;
esac

built() {
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
		[ -x "$dir/bin/dockerd" ] && [ -x "$dir/bin/docker-proxy" ] && [ -x "$dir/bin/runc" ]
}
if built; then
	echo "$dir/bin"
	exit 0
fi

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "engines: Go is needed to build dockerd and runc; put it on PATH" >&2; exit 1; }
command -v gcc >/dev/null || { echo "engines: runc needs cgo, and cgo a C compiler: install gcc (scripts/deps.sh does)" >&2; exit 1; }
pkg-config --exists libseccomp || {
	echo "engines: runc's seccomp support needs libseccomp-dev and pkg-config (scripts/deps.sh installs them)" >&2
	exit 1
}

mkdir -p "$cache"
# One build at a time: a second run waits here, then finds the first's
# build done instead of building it again or swapping folders under it.
exec 9>"$cache/.lock"
flock 9
if built; then
	echo "$dir/bin"
	exit 0
fi
tmp="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # mktemp makes it 0700
start=$SECONDS
echo "engines: building dockerd and docker-proxy $DOCKERD_VERSION and runc $RUNC_VERSION into $dir (3 to 5 minutes on 2 cores)" >&2
# GOFLAGS from the caller (e.g. -mod=vendor) must not reach these installs.
# A dockerd built by go install calls itself "library-import"; name the
# module version instead, so that `docker version` and the suite's log say
# which engine ran. docker-proxy comes from the same module: Debian's (20.10)
# does not understand the flags a 29 dockerd starts it with.
GOFLAGS=-buildvcs=false GOBIN="$tmp/bin" \
	go install -ldflags "-X github.com/moby/moby/v2/dockerversion.Version=$DOCKERD_VERSION" \
	"github.com/moby/moby/v2/cmd/dockerd@$DOCKERD_VERSION" \
	"github.com/moby/moby/v2/cmd/docker-proxy@$DOCKERD_VERSION" >&2
GOFLAGS=-buildvcs=false GOBIN="$tmp/bin" CGO_ENABLED=1 \
	go install -tags seccomp "github.com/opencontainers/runc@$RUNC_VERSION" >&2
echo "$want" >"$tmp/stamp"
rm -rf "$dir" # an older or unfinished build of these versions
mv -T "$tmp" "$dir"
trap - EXIT
echo "engines: built in $((SECONDS - start)) s" >&2
echo "$dir/bin"

# hostpass build, test and packaging.
#
#   make demo      hostpass on a real Docker: network, container, audit records
#   make test      lint, unit tests, cross builds, fuzzing, then the end-to-end
#                  suite (what CI runs: .ci/run -> scripts/test.sh -> make test)
#   make lint      gofmt, go vet, and go vet of the end-to-end suite (-tags e2e)
#   make unit      unit tests with -race; as a normal user too: the few tests
#                  that need root skip, saying what they need
#   make e2e       the end-to-end suite on real dockerds (root), twice: on
#                  the machine's dockerd (e2e-20.10: Debian 12's 20.10) and on
#                  Docker Engine 29 (e2e-29), built once by `make engines`
#   make engines   Docker Engine 29 and runc from their Go modules, at the
#                  versions of scripts/engines.env, cached outside the
#                  repository (3 to 5 minutes the first time)
#   make cross     the CLI built for macOS and Windows, where auditors verify
#   make fuzz      each fuzz target for FUZZTIME (10s), about 2 minutes in all
#   make bench     Go benchmarks, and docker run on hostpass against a no-op driver, both engines
#   make build     static binary bin/hostpass
#   make plugin    managed (v2) plugin $(PLUGIN_NAME) on the engine at $$DOCKER_HOST
#   make push      same, named $(REGISTRY)/$(PLUGIN_NAME), pushed to $(REGISTRY)
#
# Managed plugin notes (measured on dockerd 20.10):
# - The plugin bind-mounts one host folder, /var/log (mount "varlog", rbind,
#   rslave), and creates hostpass/ (audit log) and hostpass/state/ (state) in
#   it, so `make plugin` and `docker plugin install` work on a fresh host:
#   Docker creates no mount source, and /var/log exists everywhere. It grants
#   write access to the host's other logs, not /var/lib or Docker's data root.
#   To narrow it, give it an empty folder of your own (hostpass/ is made in it):
#     make plugin PLUGIN_SETTINGS="varlog.source=/srv/hp"
#   The docker mount's source must exist (/var/run/docker.sock); with
#   HOSTPASS_WATCH=false, docker.source=/dev/null drops it. README.md, "As a
#   managed plugin", weighs each grant and covers upgrades from older layouts.
# - The plugin needs no capabilities: reading links and addresses over netlink
#   needs none, and it creates no interfaces.
# - Two plugins made from the same build/ folder on one engine clash ("content
#   sha256:... already exists"); every `make plugin` / `make push` exports a fresh
#   rootfs, and `make push` removes its local copy once pushed, so a later
#   `docker plugin install` of the pushed name does not clash with it.

GO          ?= go
DOCKER      ?= docker
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
PLUGIN_NAME ?= hostpass:latest
# Space-separated `docker plugin set` arguments applied before enabling.
PLUGIN_SETTINGS ?=
# The plugin's config; the e2e suite builds an older layout's from it.
CONFIG      ?= config.json
REGISTRY    ?=

BIN      := bin/hostpass
BUILD    := build
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Unique per run, so parallel runs against one engine do not collide.
TMP_NAME := hostpass-rootfs-$(shell echo $$$$)

.PHONY: all deps demo build unit e2e e2e-20.10 e2e-29 engines test bench lint rootfs plugin push clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./plugin

# deps: Debian packages the demo and the end-to-end suite need (root; only
# what is missing is installed).
deps:
	scripts/deps.sh

demo: deps
	scripts/demo.sh

# unit: every package's tests, which need no Docker. A normal user runs
# them too: the tests that need root (a network namespace, a tmpfs mount)
# skip, naming what they need. To see what a normal user sees, as root:
#   useradd -m hpunit
#   mkdir -p ~hpunit/go/pkg && cp -a "$(go env GOMODCACHE)" ~hpunit/go/pkg/
#   mkdir ~hpunit/src && git archive HEAD | tar -x -C ~hpunit/src
#   chown -R hpunit: ~hpunit
#   runuser -u hpunit -- env HOME=/home/hpunit PATH=/usr/local/go/bin:/usr/bin:/bin \
#       make -C /home/hpunit/src unit
# (the copied module cache: root's is not readable by others).
unit:
	$(GO) test -race -count=1 ./...

# e2e: every end-to-end test on both engines, one engine after the other.
# Each run names its engine at the top of its output and in every test's
# log. One engine: make e2e-20.10 or make e2e-29; some tests only:
#   make e2e-29 E2EFLAGS='-run TestGwAllocChecker'
E2EFLAGS ?=
E2E = $(GO) test -race -count=1 -tags e2e -v -timeout 40m $(E2EFLAGS) ./test/...

# Both engines run even when the first fails, so that CI reports both.
e2e: build engines
	@rc=0; \
	$(MAKE) --no-print-directory e2e-20.10 || rc=1; \
	$(MAKE) --no-print-directory e2e-29 || rc=1; \
	exit $$rc

# e2e-20.10: the machine's dockerd and runc (on PATH).
e2e-20.10: build
	$(E2E)

# e2e-29: Docker Engine 29 (scripts/engines.env pins it) with the runc and
# docker-proxy built beside it; Debian's containerd serves it too.
e2e-29: build engines
	HOSTPASS_E2E_DOCKERD=$(ENGINE_BIN)/dockerd HOSTPASS_E2E_RUNC=$(ENGINE_BIN)/runc $(E2E)

# engines: build Docker Engine 29 and runc once; later runs reuse them
# while scripts/engines.env's versions match. HOSTPASS_ENGINES_CACHE moves
# the cache (default /var/cache/hostpass-engines).
ENGINE_BIN = $(shell scripts/engines.sh --print-dir)

engines: deps
	scripts/engines.sh >/dev/null

test: deps lint unit cross fuzz e2e

# cross: the audit commands (verify, show, keygen) must build where
# auditors verify, on their own laptops: macOS and Windows. serve needs
# Linux and is left out there (plugin/serve_other.go).
.PHONY: cross
cross:
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./plugin
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o /dev/null ./plugin

# fuzz: every Fuzz* target of the unit packages for FUZZTIME each
# (scripts/fuzz.sh). Their seeds, and the inputs that once failed
# (testdata/fuzz/), already run as plain tests in `make unit`.
FUZZTIME ?= 10s

.PHONY: fuzz
fuzz:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME)

# bench: the Go benchmarks, then `docker run --rm` on hostpass networks
# against a no-op driver's (gateway and --internal), 20 interleaved rounds on
# each engine the suite runs. The daemon's own figures against the no-op and
# floor drivers: scripts/bench-baseline.sh.
BENCHRUNS ?= 20
bench: build engines
	$(GO) test -run '^$$' -bench . -benchtime 3000x ./server/
	$(GO) test -count=1 -tags e2e -run '^$$' -bench DockerRun -benchtime $(BENCHRUNS)x ./test/
	HOSTPASS_E2E_DOCKERD=$(ENGINE_BIN)/dockerd HOSTPASS_E2E_RUNC=$(ENGINE_BIN)/runc \
		$(GO) test -count=1 -tags e2e -run '^$$' -bench DockerRun -benchtime $(BENCHRUNS)x ./test/

lint:
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/...

# build/rootfs: the plugin's root filesystem, exported from an image built
# FROM scratch. The build context is a staging folder holding only the binary.
rootfs: build
	rm -rf $(BUILD)
	mkdir -p $(BUILD)/context/bin $(BUILD)/rootfs
	cp $(BIN) $(BUILD)/context/bin/hostpass
	$(DOCKER) build -q -t $(TMP_NAME) -f Dockerfile $(BUILD)/context
	$(DOCKER) create --name $(TMP_NAME) $(TMP_NAME) >/dev/null
	$(DOCKER) export $(TMP_NAME) | tar -C $(BUILD)/rootfs -x
	$(DOCKER) rm -f $(TMP_NAME) >/dev/null
	$(DOCKER) rmi $(TMP_NAME) >/dev/null
	rm -rf $(BUILD)/context
	cp $(CONFIG) $(BUILD)/config.json

# plugin: (re)create and enable $(PLUGIN_NAME) on the engine at $$DOCKER_HOST.
plugin: rootfs
	$(DOCKER) plugin rm -f $(PLUGIN_NAME) >/dev/null 2>&1 || true
	$(DOCKER) plugin create $(PLUGIN_NAME) $(BUILD)
	$(if $(strip $(PLUGIN_SETTINGS)),$(DOCKER) plugin set $(PLUGIN_NAME) $(PLUGIN_SETTINGS))
	$(DOCKER) plugin enable $(PLUGIN_NAME)

# push: publish $(REGISTRY)/$(PLUGIN_NAME), e.g. make push REGISTRY=127.0.0.1:5000
push: check-registry rootfs
	$(DOCKER) plugin rm -f $(REGISTRY)/$(PLUGIN_NAME) >/dev/null 2>&1 || true
	$(DOCKER) plugin create $(REGISTRY)/$(PLUGIN_NAME) $(BUILD)
	$(DOCKER) plugin push $(REGISTRY)/$(PLUGIN_NAME)
	$(DOCKER) plugin rm $(REGISTRY)/$(PLUGIN_NAME)
	@echo "pushed; install with: docker plugin install $(REGISTRY)/$(PLUGIN_NAME)"

.PHONY: check-registry
check-registry:
	@if [ -z "$(REGISTRY)" ]; then \
		echo "make push: set REGISTRY to the registry to push to, e.g. make push REGISTRY=127.0.0.1:5000" >&2; \
		exit 1; \
	fi

clean:
	rm -rf bin $(BUILD)

// Package e2e is hostpass's end-to-end suite. It runs only with the e2e build
// tag (make e2e), as root, on a machine with docker.io, busybox-static,
// docker-registry and iproute2 installed.
//
// Every test group starts its own dockerd inside a network namespace of its
// own, so it never touches the machine's dockerd, iptables or links, and
// drives it with the docker CLI (--host unix://DIR/d.sock). Images are made
// locally from /bin/busybox; nothing is pulled.
//
// `make e2e` runs the suite twice, once per engine: on the machine's
// dockerd and runc (Debian 12: 20.10, runc 1.1.5), and on Docker Engine 29
// with runc 1.5 as scripts/engines.sh builds them (HOSTPASS_E2E_DOCKERD,
// HOSTPASS_E2E_RUNC). The output names the engine at the top and in every
// test's log. Where an engine behaves differently, the test branches on
// what the fixture read from it (engineVersion), and says why.
//
// Two fixtures: engine_test.go (a dockerd in its own namespace, its image
// and API) and daemon_test.go (a `hostpass serve` process, alone on a
// private socket or a legacy plugin on an engine). record_test.go reads the
// audit log with the suite's own copy of the record; helpers_test.go holds
// what the rest shares. Every other file is one subject: crash (kill -9,
// torn tail, SIGHUP rotation), sealed, syslog, bounds, hangup, stdout,
// auditfail, restart, legacy, managed, fresh (managed plugin on a fresh
// host), watcher, watcher_burst, watcher_shared (--network container:X),
// watcher_crash, policy, demo, bench, swarm (a real two-node swarm, with
// hostpass installed on both nodes and an rsyslog collector).
package e2e

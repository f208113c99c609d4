// Package e2e is hostpass's end-to-end suite. It runs only with the e2e build
// tag (make e2e), as root, on a machine with docker.io, busybox-static,
// docker-registry and iproute2 installed.
//
// Every test group starts its own dockerd inside a network namespace of its
// own, so it never touches the machine's dockerd, iptables or links, and
// drives it with the docker CLI (--host unix://DIR/d.sock). Images are made
// locally from /bin/busybox; nothing is pulled.
package e2e

// Command hostpass is the hostpass daemon: a Docker network plugin whose
// driver mirrors Docker's host driver and audits every lifecycle call.
package main

import (
	"fmt"
	"io"
	"os"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

const usage = `hostpass: a Docker network plugin that audits host-mode networking

Usage:
  hostpass serve [flags]   serve Docker's network driver API (see: hostpass serve --help)
  hostpass audit verify    check the audit log's chain and seals (see: hostpass audit help)
  hostpass audit show      list audit records by network, endpoint, event, time
  hostpass audit keygen    write a new initial sealing key
  hostpass bench [flags]   load the daemon over its socket: calls/s and latency
  hostpass version         print version and commit
  hostpass help            print this help
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "audit":
		return runAudit(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "hostpass %s (commit %s)\n", version, commit)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		fmt.Fprintln(stdout)
		serveFlags(&serveOptions{}, stdout).Usage()
		return 0
	}
	fmt.Fprintf(stderr, "hostpass: unknown command %q; commands: serve, audit, bench, version, help\n", args[0])
	return 2
}

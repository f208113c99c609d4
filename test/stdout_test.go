//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestUndrainedStdoutNeverBlocksCalls runs the daemon with stdout and stderr
// a FIFO that a reader holds open and never reads, as a managed plugin's
// stdout is when dockerd falls behind. Logging must not hold a call: 3000
// containers' CreateEndpoint+Join from 4 clients all answer, and every join
// is in the audit file. A call that stops answering fails the test at its
// deadline instead of hanging it.
//
// At debug, every call logs too: no level may make a call wait.
func TestUndrainedStdoutNeverBlocksCalls(t *testing.T) {
	requirePrereqs(t)
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) { undrainedStdout(t, level) })
	}
}

func undrainedStdout(t *testing.T, level string) {
	const containers, clients = 3000, 4
	dir := t.TempDir()
	writer := unreadFIFO(t)
	d := newDaemon(t, dir)
	d.extra = []string{"--watch=false", "--log-level", level}
	d.output = writer
	d.start(t)
	writer.Close()

	// One deadline for the whole run: a daemon that stops answering fails
	// the test here rather than hanging it. It is far above what the run
	// takes, so it says nothing about speed.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := d.client()
	if code, err := d.postCtx(ctx, c, "CreateNetwork", `{"NetworkID":"5d07000000000000000000000000000000000000000000000000000000000000"}`); err != nil || code != 200 {
		t.Fatalf("CreateNetwork: %d %v", code, err)
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := d.client()
			for {
				n := next.Add(1)
				if n > containers {
					return
				}
				ep := fmt.Sprintf("ep-%06d", n)
				for _, call := range []struct{ method, body string }{
					{"CreateEndpoint", `{"NetworkID":"5d07000000000000000000000000000000000000000000000000000000000000","EndpointID":"` + ep + `","Interface":{}}`},
					{"Join", `{"NetworkID":"5d07000000000000000000000000000000000000000000000000000000000000","EndpointID":"` + ep + `","SandboxKey":"/var/run/docker/netns/` + ep + `"}`},
				} {
					code, err := d.postCtx(ctx, c, call.method, call.body)
					if err != nil || code != 200 {
						errs <- fmt.Errorf("%s of %s, after %d containers: %d %v", call.method, ep, done.Load(), code, err)
						cancel() // stop the other clients too
						return
					}
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	joined := map[string]bool{}
	for _, r := range filter(readAudit(t, d.audit), byEvent("endpoint.join", "ok")) {
		joined[r.EndpointID] = true
	}
	for n := 1; n <= containers; n++ {
		if ep := fmt.Sprintf("ep-%06d", n); !joined[ep] {
			t.Errorf("join of %s answered ok, but the audit file has no record of it", ep)
		}
	}
	// A clean stop still works with the log output stuck.
	if !d.terminate() {
		t.Errorf("hostpass serve still running %s after SIGTERM, with its stdout undrained", pluginStop)
	} else if d.exitErr != nil {
		t.Errorf("hostpass serve after SIGTERM: %v", d.exitErr)
	}
	t.Logf("log level %s: %d containers joined from %d clients with stdout and stderr undrained; %d join records", level, containers, clients, len(joined))
}

// unreadFIFO returns the writing end of a FIFO whose reader never reads:
// the reader keeps it open until the test ends, so writes fill the pipe's
// buffer and then block, instead of failing with EPIPE.
func unreadFIFO(t *testing.T) *os.File {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "stdout.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	writer, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return writer
}

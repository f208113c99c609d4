package daemon

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
)

// SIGHUP rotates the audit log; the chain goes on in the new file. SIGTERM
// stops the daemon as a cancelled context does. The signals go to the test
// process itself: Run holds them from before READY=1.
func TestSignalsRotateAndStop(t *testing.T) {
	notify := notifySocket(t)
	cfg := testConfig(t)
	log := withLog(&cfg)
	r := start(t, cfg)
	if got := receive(t, notify); got != "READY=1" {
		t.Fatalf("notification %q; want READY=1", got)
	}
	createNetwork(t, cfg.Socket)

	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	log.await(t, "audit log rotated")
	files := mustFiles(t, cfg.AuditLog)
	if len(files) != 2 || files[0] != cfg.AuditLog+".00000000000000000001" || files[1] != cfg.AuditLog {
		t.Fatalf("files after SIGHUP: %v; want %s.00000000000000000001 and %s", files, cfg.AuditLog, cfg.AuditLog)
	}
	if status, body := call(t, cfg.Socket, "NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": netID}); status != http.StatusOK {
		t.Fatalf("DeleteNetwork: %d %s", status, body)
	}
	if sum, err := audit.Verify(mustFiles(t, cfg.AuditLog), audit.VerifyOptions{}); err != nil || sum.Files != 2 {
		t.Errorf("after rotation: %+v, %v; want one chain over 2 files", sum, err)
	}
	if got := events(records(t, cfg.AuditLog)); strings.Join(got, " ") != "network.create:ok network.delete:ok" {
		t.Errorf("records %v; want network.create:ok network.delete:ok", got)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, notify); got != "STOPPING=1" {
		t.Errorf("notification at SIGTERM %q; want STOPPING=1", got)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("Run after SIGTERM: %v", err)
	}
	if e := log.find("stopping: letting calls in flight finish"); e == nil || e.Data["signal"] != "terminated" {
		t.Errorf("stop entry %v; want signal terminated", e)
	}
}

// A SIGHUP that cannot rotate (the rotated file's name is taken) is
// reported, and the daemon serves on, appending to the same file.
func TestSIGHUPThatCannotRotateIsReported(t *testing.T) {
	cfg := testConfig(t)
	log := withLog(&cfg)
	start(t, cfg)
	createNetwork(t, cfg.Socket)
	taken := cfg.AuditLog + ".00000000000000000001"
	if err := os.Mkdir(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e := log.await(t, "SIGHUP: cannot rotate the audit log")
	want := "cannot rotate " + cfg.AuditLog + ": " + taken + " exists"
	if err, _ := e.Data[logrus.ErrorKey].(error); err == nil || err.Error() != want {
		t.Errorf("error %v; want %q", e.Data[logrus.ErrorKey], want)
	}
	if status, body := call(t, cfg.Socket, "NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": netID}); status != http.StatusOK {
		t.Fatalf("DeleteNetwork after the failed rotation: %d %s", status, body)
	}
}

// A clean stop ends the sealing epoch: the key file no longer holds the
// key that sealed the last records, and the log verifies with the initial
// key.
func TestStopEndsTheSealingEpoch(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	initial, key := filepath.Join(dir, "initial.key"), filepath.Join(dir, "daemon.key")
	if err := audit.NewKeyFile(initial); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(initial)
	if err := os.WriteFile(key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Audit.SealKey = key
	r := start(t, cfg)
	createNetwork(t, cfg.Socket)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	recs := records(t, cfg.AuditLog)
	end, last := recs[len(recs)-2], recs[len(recs)-1]
	if end.Event != audit.EpochEnd || end.NextEpoch == nil || *end.NextEpoch != 1 {
		t.Errorf("record before the last %+v; want audit.epoch ending epoch 0", end)
	}
	if last.Event != audit.Stop || last.Epoch == nil || *last.Epoch != 1 {
		t.Errorf("last record %+v; want audit.stop in epoch 1", last)
	}
	if epoch, _, err := audit.ReadKeyFile(key); err != nil || epoch != 1 {
		t.Errorf("key file after stop: epoch %d, %v; want epoch 1", epoch, err)
	}
	_, k, err := audit.ReadKeyFile(initial)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := audit.Verify(mustFiles(t, cfg.AuditLog), audit.VerifyOptions{Key: k}); err != nil || !sum.SealsChecked {
		t.Errorf("verify with the initial key: %+v, %v", sum, err)
	}
}

// systemd may signal the daemon as soon as it hears READY=1: a SIGHUP then
// rotates, it does not end the process (SIGHUP's default action). Before,
// Run took the signals only after READY=1. Each start finds a record in the
// log, so that each SIGHUP shows in a rotation, awaited before the stop.
func TestSIGHUPRightAfterReady(t *testing.T) {
	cfg := testConfig(t)
	log := withLog(&cfg)
	seed := start(t, cfg)
	createNetwork(t, cfg.Socket)
	if err := seed.stop(t); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		notify := notifySocket(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		t.Cleanup(func() { cancel(); done <- <-done })
		if got := receive(t, notify); got != "READY=1" {
			t.Fatalf("notification %q; want READY=1", got)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the SIGHUP's rotation", func() bool { return log.count("audit log rotated") == i+1 })
		if status, body := call(t, cfg.Socket, "NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": netID}); status != http.StatusOK {
			t.Fatalf("start %d: DeleteNetwork after SIGHUP: %d %s; want 200", i, status, body)
		}
		cancel()
		err := <-done
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("start %d: Run: %v", i, err)
		}
	}
	if files := mustFiles(t, cfg.AuditLog); len(files) != 11 {
		t.Errorf("%d files after 10 SIGHUPs; want 10 rotated and the current one: %v", len(files), files)
	}
}

// A stop waits shutdownGrace for calls in flight, then says they were cut
// off. The audit log is closed all the same: its records are durable.
func TestStopWithACallStillInFlight(t *testing.T) {
	grace := shutdownGrace
	shutdownGrace = 100 * time.Millisecond
	t.Cleanup(func() { shutdownGrace = grace })
	cfg := testConfig(t)
	r := start(t, cfg)
	createNetwork(t, cfg.Socket)
	// A call whose body never comes: its handler waits for it (up to
	// server.BodyTimeout, longer than the grace). "100 Continue" says the
	// handler has started reading.
	c, err := net.Dial("unix", cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /NetworkDriver.Join HTTP/1.1\r\nHost: plugin\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("the call did not start: %q %v", line, err)
	}
	want := "calls still in flight after 100ms: context deadline exceeded"
	if err := r.stop(t); err == nil || err.Error() != want {
		t.Fatalf("Run at stop: %v; want %q", err, want)
	}
	// The log still stops cleanly: the call cut off had audited nothing.
	if got := events(records(t, cfg.AuditLog)); strings.Join(got, " ") != "network.create:ok audit.stop:ok" {
		t.Errorf("records %v; want network.create:ok audit.stop:ok", got)
	}
}

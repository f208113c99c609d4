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
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/server"
)

func testConfig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	log := logrus.New()
	log.SetOutput(io.Discard)
	return Config{
		Socket: filepath.Join(dir, "hp.sock"), AuditLog: filepath.Join(dir, "log", "audit.jsonl"),
		Audit:    audit.Options{EpochRecords: 1000, EpochInterval: time.Minute},
		StateDir: filepath.Join(dir, "state"), Watch: false, Version: "test", Log: log,
	}
}

// notifySocket is the unixgram socket systemd would listen on, owned by the
// test and named in NOTIFY_SOCKET.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification for systemd: %v", err)
	}
	return string(buf[:n])
}

func TestReadyOnlyOnceTheSocketAcceptsConnections(t *testing.T) {
	notify := notifySocket(t)
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()

	if got := receive(t, notify); got != "READY=1" {
		t.Fatalf("first notification %q; want READY=1", got)
	}
	// Docker, ordered after hostpass.service, starts now: the socket must
	// already take its calls.
	c, err := net.Dial("unix", cfg.Socket)
	if err != nil {
		t.Fatalf("READY=1 sent, but %s does not accept connections: %v", cfg.Socket, err)
	}
	c.Close()

	cancel()
	if got := receive(t, notify); got != "STOPPING=1" {
		t.Errorf("notification at stop %q; want STOPPING=1", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if _, err := os.Lstat(cfg.Socket); !os.IsNotExist(err) {
		t.Errorf("socket still there after stop: %v", err)
	}
}

func TestRunRefusesARegularFileAtTheSocket(t *testing.T) {
	notify := notifySocket(t)
	cfg := testConfig(t)
	if err := os.WriteFile(cfg.Socket, []byte("not mine to remove"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "exists and is a regular file, not a socket") {
		t.Fatalf("Run = %v; want a refusal naming the regular file", err)
	}
	if b, err := os.ReadFile(cfg.Socket); err != nil || string(b) != "not mine to remove" {
		t.Errorf("the file at --socket changed: %q %v", b, err)
	}
	checkNotNotified(t, notify)
}

// The daemon serves at most server.MaxConns connections at once: one more
// waits, unanswered, until a held one closes. Before, every connection was
// served: 3000 clients holding one each grew the daemon from 12 MB to 109 MB.
func TestConnectionsAreCapped(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() { cancel(); <-done })
	dial := func() net.Conn {
		t.Helper()
		for range 100 {
			if c, err := net.Dial("unix", cfg.Socket); err == nil {
				t.Cleanup(func() { c.Close() })
				return c
			}
			time.Sleep(50 * time.Millisecond) // the daemon is starting
		}
		t.Fatalf("%s never accepted a connection", cfg.Socket)
		return nil
	}
	// Held connections: accepted, each waiting for a request's headers.
	held := make([]net.Conn, server.MaxConns)
	for i := range held {
		held[i] = dial()
	}
	extra := dial()
	io.WriteString(extra, "POST /Plugin.Activate HTTP/1.1\r\nHost: hostpass\r\nContent-Length: 0\r\n\r\n")
	r := bufio.NewReader(extra)
	extra.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if resp, err := http.ReadResponse(r, nil); err == nil {
		t.Fatalf("connection %d answered (%s) while %d were held; want it to wait", server.MaxConns+1, resp.Status, server.MaxConns)
	}
	held[0].Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("once a held connection closed, the waiting one got %v, %v; want 200", resp, err)
	}
}

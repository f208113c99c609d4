package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
)

// netID is a network ID as Docker makes them.
const netID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// logged collects the daemon's log entries, for the tests that assert on
// what an operator reads there.
type logged struct {
	mu      sync.Mutex
	entries []*logrus.Entry
}

func (l *logged) Levels() []logrus.Level { return logrus.AllLevels }

func (l *logged) Fire(e *logrus.Entry) error {
	data := make(logrus.Fields, len(e.Data))
	for k, v := range e.Data {
		data[k] = v
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, &logrus.Entry{Message: e.Message, Level: e.Level, Data: data})
	return nil
}

// find returns the first entry whose message is msg, or nil.
func (l *logged) find(msg string) *logrus.Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.Message == msg {
			return e
		}
	}
	return nil
}

func (l *logged) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		if e.Message == msg {
			n++
		}
	}
	return n
}

// await waits, up to a deadline, for an entry whose message is msg.
func (l *logged) await(t *testing.T, msg string) *logrus.Entry {
	t.Helper()
	var e *logrus.Entry
	eventually(t, "log entry "+msg, func() bool { e = l.find(msg); return e != nil })
	return e
}

func withLog(cfg *Config) *logged {
	l := &logged{}
	cfg.Log.AddHook(l)
	return l
}

// eventually waits for cond, failing the test at a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 15s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running is a daemon started by start.
type running struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan error
}

// start runs the daemon until the test ends, and returns once its socket
// accepts connections.
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { cancel(); <-r.done })
	eventually(t, cfg.Socket+" to accept connections", func() bool {
		select {
		case err := <-r.done:
			t.Fatalf("Run returned before serving: %v", err)
		default:
		}
		c, err := net.Dial("unix", cfg.Socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

// stop cancels Run's context and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of being told to stop")
		return nil
	}
}

// call makes one plugin call on socket as dockerd does, and returns the
// status and the body.
func call(t *testing.T, socket, method string, req any) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	b, _ := json.Marshal(req)
	resp, err := c.Post("http://plugin/"+method, "application/vnd.docker.plugins.v1.2+json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func createNetwork(t *testing.T, socket string) {
	t.Helper()
	if status, body := call(t, socket, "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": netID}); status != http.StatusOK || body != "{}" {
		t.Fatalf("CreateNetwork: %d %s; want 200 {}", status, body)
	}
}

// records reads the audit log whose current file is path, rotated files
// first.
func records(t *testing.T, path string) []audit.Record {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		s := bufio.NewScanner(fh)
		for s.Scan() {
			var r audit.Record
			if err := json.Unmarshal(s.Bytes(), &r); err != nil {
				t.Fatalf("%s: %q is not a record: %v", f, s.Text(), err)
			}
			out = append(out, r)
		}
		fh.Close()
	}
	return out
}

func events(recs []audit.Record) []string {
	var out []string
	for _, r := range recs {
		if r.Event != audit.HostView {
			out = append(out, string(r.Event)+":"+string(r.Outcome))
		}
	}
	return out
}

func mustFiles(t *testing.T, path string) []string {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkNotNotified fails if systemd heard anything on notify: a daemon
// that refused to start must not say READY=1.
func checkNotNotified(t *testing.T, notify *net.UnixConn) {
	t.Helper()
	notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := notify.Read(make([]byte, 64)); err == nil {
		t.Errorf("systemd was notified (%d bytes) though the daemon never listened", n)
	}
}

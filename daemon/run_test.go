package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
)

// What a user of the daemon meets: the calls on its socket, the records in
// its audit log, its own log, systemd's notifications, its files on stop.

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
			out = append(out, r.Event+":"+r.Outcome)
		}
	}
	return out
}

func TestRunServesDockersCallsAndAuditsThem(t *testing.T) {
	cfg := testConfig(t)
	log := withLog(&cfg)
	r := start(t, cfg)

	status, body := call(t, cfg.Socket, "Plugin.Activate", nil)
	if status != http.StatusOK || body != `{"Implements":["NetworkDriver"]}` {
		t.Errorf("Plugin.Activate: %d %s; want 200 {\"Implements\":[\"NetworkDriver\"]}", status, body)
	}
	createNetwork(t, cfg.Socket)

	// The record is durable before Docker hears "ok": it is in the file now.
	recs := records(t, cfg.AuditLog)
	var rec *audit.Record
	for i := range recs {
		if recs[i].Event == audit.NetworkCreate {
			rec = &recs[i]
		}
	}
	hostname, _ := os.Hostname()
	if rec == nil || rec.Outcome != audit.OK || rec.NetworkID != netID || rec.Driver != "hp" || rec.Host != hostname {
		t.Fatalf("audit log holds %+v; want a network.create record, ok, for %s, driver hp, host %s", recs, netID, hostname)
	}
	// The mirror: the same record in the daemon's own log.
	mirrored := log.await(t, "audit")
	if line, _ := mirrored.Data["record"].(string); !strings.Contains(line, `"event":"network.create"`) || mirrored.Data["driver"] != "hp" {
		t.Errorf("daemon log's audit entry: %v; want the network.create record, driver hp", mirrored.Data)
	}
	serving := log.find("hostpass serving")
	if serving == nil || serving.Data["socket"] != cfg.Socket || serving.Data["audit_log"] != cfg.AuditLog || serving.Data["version"] != "test" {
		t.Errorf("start entry %v; want socket, audit_log and version", serving)
	}

	if err := r.stop(t); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if _, err := os.Lstat(cfg.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after stop: %v", err)
	}
	if log.find("hostpass stopped") == nil {
		t.Error(`no "hostpass stopped" in the daemon's log`)
	}
	// The driver's state survives for the next start.
	if b, err := os.ReadFile(filepath.Join(cfg.StateDir, "networks.json")); err != nil || !strings.Contains(string(b), netID) {
		t.Errorf("state after stop: %q %v; want network %s", b, err, netID)
	}
	if _, err := audit.Verify(mustFiles(t, cfg.AuditLog), audit.VerifyOptions{}); err != nil {
		t.Errorf("the log does not verify after stop: %v", err)
	}
}

func mustFiles(t *testing.T, path string) []string {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

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
	last := recs[len(recs)-1]
	if last.Event != audit.EpochEnd || last.NextEpoch == nil || *last.NextEpoch != 1 {
		t.Errorf("last record %+v; want audit.epoch ending epoch 0", last)
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

// Settings that reach Run but cannot work stop it before it listens, with
// the error that names them; systemd never hears READY=1.
func TestRunRefusesBadSettingsBeforeListening(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, cfg *Config) (want string)
	}{
		{"sealing key gone", func(t *testing.T, cfg *Config) string {
			cfg.Audit.SealKey = filepath.Join(t.TempDir(), "gone.key")
			return "sealing key: open " + cfg.Audit.SealKey + ": no such file or directory"
		}},
		{"driver state damaged", func(t *testing.T, cfg *Config) string {
			writeFile(t, filepath.Join(cfg.StateDir, "networks.json"), "{")
			return "hostpass state " + filepath.Join(cfg.StateDir, "networks.json") + " is not valid JSON (unexpected end of JSON input): fix it or move it away; hostpass will not overwrite it"
		}},
		{"watcher state damaged", func(t *testing.T, cfg *Config) string {
			cfg.Watch, cfg.DockerSocket = true, filepath.Join(t.TempDir(), "docker.sock")
			writeFile(t, filepath.Join(cfg.StateDir, "watcher.json"), "{")
			return "watcher state " + filepath.Join(cfg.StateDir, "watcher.json") + " is not valid JSON (unexpected end of JSON input): fix it or move it away"
		}},
		{"syslog address", func(t *testing.T, cfg *Config) string {
			cfg.Syslog = "http://collector"
			return `syslog address "http://collector": want unixgram:///dev/log, unix:///PATH, udp://HOST:PORT or tcp://HOST:PORT`
		}},
		{"socket's directory is a file", func(t *testing.T, cfg *Config) string {
			parent := filepath.Join(t.TempDir(), "file")
			writeFile(t, parent, "")
			cfg.Socket = filepath.Join(parent, "hp.sock")
			return "--socket " + cfg.Socket + ": making its directory: mkdir " + parent + ": not a directory"
		}},
		{"socket in use", func(t *testing.T, cfg *Config) string {
			l, err := net.Listen("unix", cfg.Socket)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return "socket " + cfg.Socket + " is in use by a running daemon; stop it first or choose another --socket"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notify := notifySocket(t)
			cfg := testConfig(t)
			want := tc.setup(t, &cfg)
			err := Run(context.Background(), cfg)
			if err == nil {
				t.Fatal("Run succeeded; want a refusal")
			}
			if err.Error() != want {
				t.Errorf("Run: %q\nwant %q", err, want)
			}
			notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, err := notify.Read(make([]byte, 64)); err == nil {
				t.Errorf("systemd was notified (%d bytes) though the daemon never listened", n)
			}
		})
	}
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

// A socket left by a killed daemon is replaced: the new daemon serves.
func TestRunReplacesAStaleSocket(t *testing.T) {
	cfg := testConfig(t)
	stale, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	start(t, cfg)
	if status, body := call(t, cfg.Socket, "Plugin.Activate", nil); status != http.StatusOK {
		t.Errorf("Plugin.Activate on the replaced socket: %d %s", status, body)
	}
}

// An audit log that cannot be written does not stop the daemon: Docker's
// calls that need a record are refused with the reason, teardown is kept in
// memory, and the stop says what it could not write.
func TestRunWithAnUnwritableAuditLog(t *testing.T) {
	cfg := testConfig(t)
	parent := filepath.Join(t.TempDir(), "file")
	writeFile(t, parent, "")
	cfg.AuditLog = filepath.Join(parent, "audit.jsonl")
	r := start(t, cfg)
	if status, _ := call(t, cfg.Socket, "Plugin.Activate", nil); status != http.StatusOK {
		t.Errorf("Plugin.Activate: %d; want 200", status)
	}
	status, body := call(t, cfg.Socket, "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": netID})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "audit log unavailable") || !strings.Contains(body, "mkdir "+parent+": not a directory") {
		t.Errorf("CreateNetwork with the log unwritable: %d %s; want 503 naming the audit log and why", status, body)
	}
	if status, body := call(t, cfg.Socket, "NetworkDriver.DeleteNetwork", map[string]any{"NetworkID": netID}); status != http.StatusOK {
		t.Errorf("DeleteNetwork (teardown) with the log unwritable: %d %s; want 200, its record kept", status, body)
	}
	// Kept in memory: the refused network.create and the network.delete.
	want := "2 audit records could not be written: audit log unavailable: mkdir " + parent + ": not a directory"
	if err := r.stop(t); err == nil || err.Error() != want {
		t.Errorf("Run at stop: %v\nwant %s", err, want)
	}
}

// The watcher off: the driver alone, said once in the log, and no watcher
// state is written.
func TestRunWithTheWatcherOff(t *testing.T) {
	cfg := testConfig(t)
	log := withLog(&cfg)
	r := start(t, cfg)
	if log.find("watcher off (--watch=false): no container attribution, no --network host auditing; the driver audits as usual") == nil {
		t.Error("the log does not say the watcher is off")
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "watcher.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("watcher state written with the watcher off: %v", err)
	}
}

// The watcher on, with no Docker at its socket (a legacy plugin starts
// before Docker): Run serves all the same, the log says once why there is no
// attribution, and a stop ends the watcher, whose state is saved.
func TestRunWithTheWatcherOnAndNoDocker(t *testing.T) {
	notify := notifySocket(t)
	cfg := testConfig(t)
	cfg.Watch, cfg.DockerSocket = true, filepath.Join(t.TempDir(), "docker.sock")
	log := withLog(&cfg)
	r := start(t, cfg)
	if got := receive(t, notify); got != "READY=1" {
		t.Fatalf("notification %q; want READY=1", got)
	}
	createNetwork(t, cfg.Socket)
	e := log.await(t, "watcher: Docker's API is unavailable: no container attribution or --network host auditing until it answers; retrying with backoff; the driver audits as usual")
	if e.Data["docker"] != cfg.DockerSocket {
		t.Errorf("the warning names docker %v; want %s", e.Data["docker"], cfg.DockerSocket)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "watcher.json")); err != nil {
		t.Errorf("watcher state after stop: %v", err)
	}
}

// Run returns only once the watcher has stopped, also when it fails after
// starting it: nothing of the daemon outlives Run. Before, a failure to
// listen returned with the watcher still running, to save its state later.
func TestRunFailingAfterTheWatcherStartedStopsIt(t *testing.T) {
	cfg := testConfig(t)
	cfg.Watch, cfg.DockerSocket = true, filepath.Join(t.TempDir(), "docker.sock")
	writeFile(t, cfg.Socket, "not a socket")
	if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Run = %v; want the refusal of the file at --socket", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "watcher.json")); err != nil {
		t.Errorf("Run returned before the watcher stopped and saved its state: %v", err)
	}
}

// Records reach the syslog collector named by Config.Syslog.
func TestRunSendsRecordsToSyslog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	collector, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer collector.Close()
	cfg := testConfig(t)
	cfg.Syslog = "unixgram://" + path
	start(t, cfg)
	createNetwork(t, cfg.Socket)
	collector.SetReadDeadline(time.Now().Add(15 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		n, err := collector.Read(buf)
		if err != nil {
			t.Fatalf("no network.create record at the collector: %v", err)
		}
		if msg := string(buf[:n]); strings.Contains(msg, `"event":"network.create"`) {
			if !strings.Contains(msg, netID) {
				t.Errorf("syslog message %q; want network %s", msg, netID)
			}
			return
		}
	}
}

// Outside systemd's reach (NOTIFY_SOCKET names nothing) the daemon serves
// and says once why systemd was not told.
func TestNotifyFailureIsReportedNotFatal(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
	cfg := testConfig(t)
	log := withLog(&cfg)
	start(t, cfg)
	e := log.await(t, "cannot notify systemd")
	if e.Data["state"] != "READY=1" || e.Level != logrus.WarnLevel {
		t.Errorf("entry %v at %s; want state READY=1 at warning", e.Data, e.Level)
	}
	if status, _ := call(t, cfg.Socket, "Plugin.Activate", nil); status != http.StatusOK {
		t.Errorf("Plugin.Activate: %d; want 200", status)
	}
}

// A --socket near the limit of a unix socket's path: the private directory
// passes it, and the socket is bound through /proc/self/fd. Run serves there.
func TestRunOnALongSocketPath(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	cfg.Socket = filepath.Join(dir, strings.Repeat("d", maxSocketPath-len(dir)-len("//hp.sock")-1), "hp.sock")
	r := start(t, cfg)
	if status, _ := call(t, cfg.Socket, "Plugin.Activate", nil); status != http.StatusOK {
		t.Errorf("Plugin.Activate: %d; want 200", status)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(cfg.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after stop: %v", err)
	}
}

// What net/http reports reaches the daemon's log at warning, one line.
func TestWarnWriter(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	got := &logged{}
	log.AddHook(got)
	if n, err := (warnWriter{logrus.NewEntry(log)}).Write([]byte("http: panic serving @: boom\n")); err != nil || n != 28 {
		t.Errorf("Write = %d, %v; want 28, nil", n, err)
	}
	if e := got.find("http: panic serving @: boom"); e == nil || e.Level != logrus.WarnLevel {
		t.Errorf("entry %v; want the line at warning, without its newline", e)
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
	if got := events(records(t, cfg.AuditLog)); strings.Join(got, " ") != "network.create:ok" {
		t.Errorf("records %v; want network.create:ok", got)
	}
}

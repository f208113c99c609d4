package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/metrics"
	"github.com/hostpass/hostpass/unixsock"
)

// What a user of the daemon meets: the calls on its socket, the records in
// its audit log, its own log, systemd's notifications, its files on stop.

func TestRunServesDockersCallsAndAuditsThem(t *testing.T) {
	cfg := testConfig(t)
	cfg.Log.SetLevel(logrus.DebugLevel) // every record in the daemon's log
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
	// The mirror at debug: the same record in the daemon's own log.
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
			return "--socket " + cfg.Socket + " is in use by a running daemon; stop it first or choose another --socket"
		}},
		{"socket's directory others may write", func(t *testing.T, cfg *Config) string {
			dir := filepath.Dir(cfg.Socket)
			if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
				t.Fatal(err)
			}
			uid := strconv.Itoa(os.Geteuid())
			return "--socket " + cfg.Socket + ": its directory " + dir + " is owned by uid " + uid + " with mode dtrwxrwxrwx; a socket's directory must be owned by uid " + uid + " (this daemon's user) and not writable by group or others, or another user could replace the socket: chown or chmod it, or choose a path in another directory"
		}},
		{"metrics: a file at the socket's path", func(t *testing.T, cfg *Config) string {
			p := filepath.Join(t.TempDir(), "metrics.sock")
			writeFile(t, p, "keep")
			cfg.Metrics, cfg.MetricsNetwork, cfg.MetricsAddress = metrics.New("test", "abc"), "unix", p
			return "--metrics unix://" + p + " exists and is a regular file, not a socket; hostpass removes only a socket left by a daemon that died: move the file away or choose another --metrics path"
		}},
		{"metrics: socket's directory others may write", func(t *testing.T, cfg *Config) string {
			dir := filepath.Join(t.TempDir(), "shared")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "metrics.sock")
			cfg.Metrics, cfg.MetricsNetwork, cfg.MetricsAddress = metrics.New("test", "abc"), "unix", p
			uid := strconv.Itoa(os.Geteuid())
			return "--metrics unix://" + p + ": its directory " + dir + " is owned by uid " + uid + " with mode dtrwxrwxrwx; a socket's directory must be owned by uid " + uid + " (this daemon's user) and not writable by group or others, or another user could replace the socket: chown or chmod it, or choose a path in another directory"
		}},
		{"metrics: socket's directory is a file", func(t *testing.T, cfg *Config) string {
			parent := filepath.Join(t.TempDir(), "file")
			writeFile(t, parent, "")
			p := filepath.Join(parent, "metrics.sock")
			cfg.Metrics, cfg.MetricsNetwork, cfg.MetricsAddress = metrics.New("test", "abc"), "unix", p
			return "--metrics unix://" + p + ": making its directory: mkdir " + parent + ": not a directory"
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
			checkNotNotified(t, notify)
			if strings.HasPrefix(want, "--socket ") || strings.HasPrefix(want, "--metrics ") {
				// Refused before the audit log opens: no audit.stop
				// "stopped cleanly" without a start before it.
				if _, err := os.Lstat(cfg.AuditLog); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the audit log after a refused socket: %v; want it absent", err)
				}
			}
		})
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
	// The socket's folder passes the checks Run makes before it opens the
	// audit log, but cannot be written: the listen after the watcher
	// started fails.
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY, "size=64k,mode=0755"); err != nil {
			t.Fatalf("as root this test needs a read-only tmpfs at %s: %v", dir, err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	} else {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	cfg.Socket = filepath.Join(dir, "hp.sock")
	if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "making a private directory beside it") {
		t.Fatalf("Run = %v; want the failure to listen at --socket", err)
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
	cfg.Socket = filepath.Join(dir, strings.Repeat("d", unixsock.MaxPath-len(dir)-len("//hp.sock")-1), "hp.sock")
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

// At the default level the daemon's log carries refused records and alarms
// (none here), not ok records: the file and syslog carry them all.
func TestRunLogsOnlyRefusedRecordsAtInfo(t *testing.T) {
	cfg := testConfig(t)
	log := withLog(&cfg)
	start(t, cfg)

	createNetwork(t, cfg.Socket)
	if status, _ := call(t, cfg.Socket, "NetworkDriver.CreateEndpoint", []int{1}); status != http.StatusBadRequest {
		t.Fatalf("malformed CreateEndpoint: status %d; want 400", status)
	}
	// Records reach the daemon's log in order: once the refusal is there,
	// the network.create before it has been passed over.
	refused := log.await(t, "audit")
	if line, _ := refused.Data["record"].(string); refused.Level != logrus.InfoLevel || !strings.Contains(line, `"event":"endpoint.create"`) || !strings.Contains(line, `"outcome":"refused"`) {
		t.Errorf("daemon log's audit entry at %s: %v; want the refused endpoint.create record, at info", refused.Level, refused.Data)
	}
	if n := log.count("audit"); n != 1 {
		t.Errorf("daemon log has %d audit entries at info; want 1, the refusal (network.create is ok: debug only)", n)
	}
}

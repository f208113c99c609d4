package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/hostpass/hostpass/metrics"
)

// TestRunServesMetrics: with Metrics set, a scrape of the metrics socket
// shows the driver call the test made and its audit record, and the socket
// is gone after stop.
func TestRunServesMetrics(t *testing.T) {
	cfg := testConfig(t)
	withLog(&cfg)
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	cfg.Metrics, cfg.MetricsNetwork, cfg.MetricsAddress = metrics.New("test", "abc"), "unix", sock
	r := start(t, cfg)
	createNetwork(t, cfg.Socket)

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var body string
	eventually(t, "the metrics socket to answer", func() bool {
		res, err := client.Get("http://hostpass/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body = string(b)
		return res.StatusCode == http.StatusOK
	})
	for _, want := range []string{
		`hostpass_driver_requests_total{method="NetworkDriver.CreateNetwork",result="ok"} 1`,
		`hostpass_audit_records_total{event="network.create"} 1`,
		`hostpass_build_info{commit="abc"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("metrics socket still there after stop: %v", err)
	}
}

// TestRunServesThoughTheMetricsAddressIsBusy: a --metrics address another
// process holds now (a port squatted while hostpass restarts, a socket a
// live process answers on) does not stop the daemon: the driver serves,
// the log says what is wrong and what to do, and the endpoint listens once
// the address is free, which the log says too. (What cannot work until
// someone fixes it stops Run at start: TestRunRefusesBadSettingsBeforeListening.)
func TestRunServesThoughTheMetricsAddressIsBusy(t *testing.T) {
	defer func(d time.Duration) { metricsRetry = d }(metricsRetry)
	metricsRetry = 50 * time.Millisecond
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, cfg *Config) (want string, free func())
	}{
		{"port in use", func(t *testing.T, cfg *Config) (string, func()) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { busy.Close() })
			a := busy.Addr().String()
			cfg.MetricsNetwork, cfg.MetricsAddress = "tcp", a
			return "--metrics tcp://" + a + ": listen tcp " + a + ": bind: address already in use; stop what listens there or name another port", func() { busy.Close() }
		}},
		{"a live socket at the path", func(t *testing.T, cfg *Config) (string, func()) {
			p := filepath.Join(t.TempDir(), "metrics.sock")
			live, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { live.Close() })
			cfg.MetricsNetwork, cfg.MetricsAddress = "unix", p
			return "--metrics unix://" + p + " is in use by a running daemon; stop it first or choose another --metrics path", func() { live.Close() } // removes its socket
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			log := withLog(&cfg)
			cfg.Metrics = metrics.New("test", "abc")
			want, free := tc.setup(t, &cfg)
			r := start(t, cfg)
			createNetwork(t, cfg.Socket) // the driver serves
			e := log.await(t, "metrics endpoint: cannot listen, the address is in use; the driver serves without it, and the address is tried again every 50ms until it is free")
			if err, _ := e.Data[logrus.ErrorKey].(error); err == nil || err.Error() != want || e.Level != logrus.ErrorLevel {
				t.Errorf("logged %v at %s\nwant %s at error", e.Data[logrus.ErrorKey], e.Level, want)
			}
			if got := e.Data["metrics"]; got != cfg.MetricsNetwork+"://"+cfg.MetricsAddress {
				t.Errorf("log entry's metrics field %v, want the address", got)
			}
			if log.find("metrics endpoint listening") != nil {
				t.Fatal("logged listening while the address is taken")
			}
			free()
			log.await(t, "metrics endpoint listening")
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, cfg.MetricsNetwork, cfg.MetricsAddress)
			}}}
			res, err := client.Get("http://hostpass/metrics")
			if err != nil {
				t.Fatalf("scrape once the address is free: %v", err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if want := `hostpass_driver_requests_total{method="NetworkDriver.CreateNetwork",result="ok"} 1`; !strings.Contains(string(b), want) {
				t.Errorf("scrape lacks %s", want)
			}
			if err := r.stop(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRunRefusesTheMetricsOnThePluginSocket: --metrics naming the plugin
// socket's own path is refused before anything starts, rather than one
// replacing the other.
func TestRunRefusesTheMetricsOnThePluginSocket(t *testing.T) {
	cfg := testConfig(t)
	cfg.Metrics, cfg.MetricsNetwork, cfg.MetricsAddress = metrics.New("test", "abc"), "unix", cfg.Socket
	err := Run(context.Background(), cfg)
	want := "--metrics unix://" + cfg.Socket + " is the plugin socket (--socket); the metrics need a socket of their own, such as " + filepath.Join(filepath.Dir(cfg.Socket), "metrics.sock")
	if err == nil || err.Error() != want {
		t.Fatalf("Run: %v\nwant %s", err, want)
	}
	if _, err := os.Lstat(cfg.AuditLog); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("audit log %s written by a daemon that never served: %v", cfg.AuditLog, err)
	}
}

// TestRunWithoutWatcherExportsNoWatcherMetrics: --watch=false leaves the
// watcher's series out of the scrape.
func TestRunWithoutWatcherExportsNoWatcherMetrics(t *testing.T) {
	cfg := testConfig(t)
	cfg.Watch = false
	cfg.Metrics, cfg.MetricsNetwork, cfg.MetricsAddress = metrics.New("test", "abc"), "unix", filepath.Join(t.TempDir(), "m.sock")
	r := start(t, cfg)
	createNetwork(t, cfg.Socket)
	r.stop(t)
	srv := httptest.NewServer(cfg.Metrics.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, gone := range []string{"hostpass_watcher_", "hostpass_host_mode_containers"} {
		if strings.Contains(string(b), gone) {
			t.Errorf("scrape with --watch=false has %s", gone)
		}
	}
}

// TestScrapeWhileTheAuditDiskIsFull: the audit log's file system is full,
// so the driver refuses calls (503); a scrape still answers at once and
// shows the refusals by class, and the daemon goes on.
func TestScrapeWhileTheAuditDiskIsFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a full file system needs a tmpfs mount (root); run as root to cover a scrape with the disk full")
	}
	disk := t.TempDir()
	if err := unix.Mount("tmpfs", disk, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount a tmpfs at %s: %v", disk, err)
	}
	t.Cleanup(func() { unix.Unmount(disk, unix.MNT_DETACH) })
	cfg := testConfig(t)
	cfg.AuditLog = filepath.Join(disk, "audit.jsonl")
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	cfg.Metrics, cfg.MetricsNetwork, cfg.MetricsAddress = metrics.New("test", "abc"), "unix", sock
	r := start(t, cfg)
	// Fill what is left, as another writer on the disk would.
	fill, err := os.Create(filepath.Join(disk, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = fill.Write(make([]byte, 4096))
	}
	fill.Close()
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v; want ENOSPC", err)
	}

	for range 3 {
		if status, body := call(t, cfg.Socket, "NetworkDriver.CreateNetwork", map[string]any{"NetworkID": netID}); status != http.StatusServiceUnavailable {
			t.Fatalf("CreateNetwork with the disk full: %d %s; want 503", status, body)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	res, err := client.Get("http://hostpass/metrics")
	if err != nil {
		t.Fatalf("scrape with the disk full: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape with the disk full: %d %s", res.StatusCode, b)
	}
	if want := `hostpass_driver_requests_total{method="NetworkDriver.CreateNetwork",result="unavailable"} 3`; !strings.Contains(string(b), want+"\n") {
		t.Errorf("scrape lacks %s", want)
	}
	os.Remove(filepath.Join(disk, "fill"))
	r.stop(t) // the refused records are written now, or reported: not this test's matter
}

// TestRunCountsSyslogDrops: with the syslog collector down, every record
// meant for it is lost, and hostpass_dropped_lines_total{sink="syslog"} counts
// each one the audit file has.
func TestRunCountsSyslogDrops(t *testing.T) {
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down.Close() // nothing listens there now
	cfg := testConfig(t)
	cfg.Syslog = "tcp://" + down.Addr().String()
	cfg.Metrics, cfg.MetricsNetwork, cfg.MetricsAddress = metrics.New("test", "abc"), "unix", filepath.Join(t.TempDir(), "m.sock")
	r := start(t, cfg)
	createNetwork(t, cfg.Socket)
	if err := r.stop(t); err != nil { // the sink gives up on what is queued
		t.Fatal(err)
	}
	srv := httptest.NewServer(cfg.Metrics.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	want := fmt.Sprintf(`hostpass_dropped_lines_total{sink="syslog"} %d`, len(records(t, cfg.AuditLog)))
	if !strings.Contains(string(b), want+"\n") {
		t.Errorf("scrape lacks %s (one per record); it has:\n%s", want, grepLines(string(b), "hostpass_dropped_lines_total"))
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

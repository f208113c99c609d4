package metrics

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/hostpass/hostpass/audit"
)

// exercised returns metrics with every series given a value, as a busy
// signed daemon would have them.
func exercised() *Metrics {
	m := New("1.2.3", "abc123")
	m.Request("NetworkDriver.Join", "ok", 2*time.Millisecond)
	m.Request("NetworkDriver.CreateEndpoint", "invalid_parameter", time.Millisecond)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.Synced(700*time.Microsecond, []audit.Record{
		{Event: audit.EndpointJoin}, {Event: audit.Checkpoint, Checkpoint: "signed note"}, {Event: audit.PolicyViolation},
		{Event: audit.WatchGap, Gap: &audit.Gap{From: from, To: from.Add(1500 * time.Millisecond)}},
	})
	m.MirrorDropped()
	m.SyslogDropped(1)
	m.LogLinesDropped(3)
	m.WatcherLag(3 * time.Millisecond)
	m.Reconnected()
	m.HostMode(2)
	m.Failed(nil)
	return m
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", res.StatusCode, body)
	}
	return string(body)
}

// TestExpositionLints scrapes the handler and runs promlint, the linter
// behind `promtool check metrics`, over what it served.
func TestExpositionLints(t *testing.T) {
	body := scrape(t, exercised())
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestScrapeShowsWhatHappened(t *testing.T) {
	body := scrape(t, exercised())
	for _, want := range []string{
		`hostpass_driver_requests_total{method="NetworkDriver.Join",result="ok"} 1`,
		`hostpass_driver_requests_total{method="NetworkDriver.CreateEndpoint",result="invalid_parameter"} 1`,
		`hostpass_driver_request_duration_seconds_count{method="NetworkDriver.Join"} 1`,
		`hostpass_audit_fsync_duration_seconds_count 1`,
		`hostpass_audit_batch_records_sum 4`,
		`hostpass_audit_records_total{event="endpoint.join"} 1`,
		`hostpass_audit_records_total{event="audit.checkpoint"} 1`,
		`hostpass_dropped_lines_total{sink="mirror"} 1`,
		`hostpass_dropped_lines_total{sink="syslog"} 1`,
		`hostpass_dropped_lines_total{sink="daemon_log"} 3`,
		`hostpass_watcher_lag_seconds_count 1`,
		`hostpass_watcher_reconnects_total 1`,
		`hostpass_watcher_gap_seconds_total 1.5`,
		`hostpass_host_mode_containers 2`,
		`hostpass_policy_violations_total 1`,
		`hostpass_audit_last_checkpoint_timestamp_seconds `,
		`hostpass_audit_write_errors_total 1`,
		`hostpass_build_info{commit="abc123",goversion="go`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(body, "container") && !strings.Contains(body, "hostpass_host_mode_containers") {
		t.Errorf("a label names containers:\n%s", body)
	}
}

// TestLastCheckpointTimestamp: an unsigned log has no checkpoint series; a
// signed one has it from the start, 0 until its first checkpoint is durable
// (so that time() - x alerts while none could be written), then the Unix
// time it became durable.
func TestLastCheckpointTimestamp(t *testing.T) {
	m := New("v", "c")
	m.Synced(time.Millisecond, []audit.Record{{Event: audit.EndpointJoin}})
	if n := testutil.CollectAndCount(lastCheckpoint{m}); n != 0 {
		t.Fatalf("last checkpoint on an unsigned log: %d series, want none", n)
	}
	m.Signed()
	if got := testutil.ToFloat64(lastCheckpoint{m}); got != 0 {
		t.Fatalf("last checkpoint of a signed log before its first: %v, want 0", got)
	}
	before := float64(time.Now().UnixNano()) / 1e9
	m.Synced(time.Millisecond, []audit.Record{{Event: audit.Checkpoint, Checkpoint: "note"}})
	after := float64(time.Now().UnixNano()) / 1e9
	if got := testutil.ToFloat64(lastCheckpoint{m}); got < before || got > after {
		t.Fatalf("last checkpoint: %v, want the time it became durable, from %v to %v", got, before, after)
	}
}

// TestWithoutWatcher: with the watcher off, its metrics are not exported
// at all, rather than 0s that read as a quiet, healthy watcher.
func TestWithoutWatcher(t *testing.T) {
	m := exercised()
	m.WithoutWatcher()
	body := scrape(t, m)
	for _, gone := range []string{"hostpass_watcher_", "hostpass_host_mode_containers", "hostpass_policy_violations_total"} {
		if strings.Contains(body, gone) {
			t.Errorf("scrape with the watcher off has %s:\n%s", gone, grep(body, gone))
		}
	}
	if !strings.Contains(body, `hostpass_driver_requests_total{method="NetworkDriver.Join",result="ok"} 1`) {
		t.Errorf("scrape with the watcher off lost the driver's requests")
	}
}

// TestFsyncBuckets: the fsync histogram tells 50 µs from 75 µs (an NVMe
// disk's range) and reaches past 1 s, each bound 1.5 times the last.
func TestFsyncBuckets(t *testing.T) {
	m := New("v", "c")
	m.Synced(time.Millisecond, nil)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "hostpass_audit_fsync_duration_seconds" {
			continue
		}
		b := f.GetMetric()[0].GetHistogram().GetBucket()
		if first, last := b[0].GetUpperBound(), b[len(b)-1].GetUpperBound(); first != 0.00005 || last < 1 || last > 2 {
			t.Errorf("fsync buckets from %v to %v, want from 50 µs to just past 1 s", first, last)
		}
		for i := 1; i < len(b); i++ {
			if r := b[i].GetUpperBound() / b[i-1].GetUpperBound(); r < 1.49 || r > 1.51 {
				t.Errorf("fsync bucket %d is %v times the last, want 1.5", i, r)
			}
		}
		return
	}
	t.Fatal("no fsync histogram")
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestCountersByLabel(t *testing.T) {
	m := exercised()
	if got := testutil.ToFloat64(m.requests.WithLabelValues("NetworkDriver.Join", "ok")); got != 1 {
		t.Errorf("Join ok: %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.hostMode); got != 2 {
		t.Errorf("host mode gauge: %v, want 2", got)
	}
}

// TestNilMetrics: a daemon without --metrics holds a nil *Metrics, and
// every update must be a no-op on it.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.Request("NetworkDriver.Join", "ok", time.Millisecond)
	m.Synced(time.Millisecond, []audit.Record{{Event: audit.Checkpoint}})
	m.SyslogDropped(1)
	m.LogLinesDropped(1)
	m.MirrorDropped()
	m.WatcherLag(time.Millisecond)
	m.Reconnected()
	m.HostMode(1)
	m.Failed(nil)
	m.Signed()
	m.WithoutWatcher()
}

// TestPromtoolCheckMetrics runs Debian's `promtool check metrics` over a
// scrape, when promtool is installed (apt-get install prometheus).
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: apt-get install prometheus)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape(t, exercised()))
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// blocking is a collector whose Collect waits until released, as a slow
// gather would.
type blocking struct{ entered, release chan struct{} }

func (b blocking) Describe(chan<- *prometheus.Desc) {}
func (b blocking) Collect(chan<- prometheus.Metric) {
	b.entered <- struct{}{}
	<-b.release
}

// TestScrapesInFlightAreBounded: past MaxScrapes at once, a scrape is
// answered 503 at once instead of gathering beside the others.
func TestScrapesInFlightAreBounded(t *testing.T) {
	m := New("v", "c")
	b := blocking{entered: make(chan struct{}, 1), release: make(chan struct{})}
	m.Registry().MustRegister(b)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	defer close(b.release)
	client := &http.Client{Timeout: 5 * time.Second}
	codes := make(chan int, MaxScrapes)
	for range MaxScrapes {
		go func() {
			res, err := client.Get(srv.URL)
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			codes <- res.StatusCode
		}()
		<-b.entered
	}
	res, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape %d with %d in flight: %v; want 503 at once", MaxScrapes+1, MaxScrapes, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("scrape %d with %d in flight: %d; want 503", MaxScrapes+1, MaxScrapes, res.StatusCode)
	}
	for range MaxScrapes {
		b.release <- struct{}{}
	}
	for range MaxScrapes {
		if c := <-codes; c != http.StatusOK {
			t.Errorf("a scrape in flight: %d; want 200", c)
		}
	}
}

// TestWatcherLagNeverNegative: an event stamped after now (the clock
// stepped back) counts, as 0, and leaves the histogram's sum alone.
func TestWatcherLagNeverNegative(t *testing.T) {
	m := New("v", "c")
	m.WatcherLag(2 * time.Millisecond)
	m.WatcherLag(-time.Hour)
	body := scrape(t, m)
	for _, want := range []string{"hostpass_watcher_lag_seconds_sum 0.002\n", "hostpass_watcher_lag_seconds_count 2\n", `hostpass_watcher_lag_seconds_bucket{le="0.001"} 1` + "\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

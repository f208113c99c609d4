// Package metrics holds hostpass's Prometheus metrics: one registry, the
// metrics in it, and the methods the server and the audit writer call to
// update them. Every method works on a nil *Metrics, so a daemon run without
// --metrics pays one nil check per call.
//
// Names follow Prometheus's conventions: the hostpass_ prefix, counters end
// in _total, durations are _seconds histograms, sizes in base units. No
// label carries a container, endpoint or network ID: their number is
// unbounded, and each label value is a series kept for ever.
package metrics

import (
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hostpass/hostpass/audit"
)

// Drop sources: where a line meant for someone other than the audit file was
// dropped. The audit file itself never drops a record.
const (
	DropDaemonLog = "daemon_log" // a daemon log line the non-blocking writer dropped or its output refused (logout)
	DropSyslog    = "syslog"     // a record the syslog sink dropped or could not deliver
	DropMirror    = "mirror"     // a record the audit log's mirror queue dropped
)

// Metrics is the registry and its metrics.
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	fsyncDuration   prometheus.Histogram
	batchRecords    prometheus.Histogram
	records         *prometheus.CounterVec
	drops           *prometheus.CounterVec
	dropLog         prometheus.Counter // drops' series, resolved once: a drop
	dropSyslog      prometheus.Counter // comes in floods, and each costs no
	dropMirror      prometheus.Counter // label lookup
	watcherLag      prometheus.Histogram
	reconnects      prometheus.Counter
	gapSeconds      prometheus.Counter
	hostMode        prometheus.Gauge
	violations      prometheus.Counter

	writeErrors prometheus.Counter

	mu             sync.Mutex // guards signed and lastCheckpoint
	signed         bool       // the log is signed: the checkpoint's timestamp is exported
	lastCheckpoint time.Time  // when the last signed checkpoint became durable; zero: none yet
}

// New returns the metrics, registered with a registry of their own along
// with Go's runtime and process collectors. version and commit label
// hostpass_build_info.
func New(version, commit string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hostpass_driver_requests_total",
		Help: "Calls of Docker's remote network driver API, by method (NetworkDriver.Join) and result (ok, invalid_parameter, not_found, unavailable, error).",
	}, []string{"method", "result"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hostpass_driver_request_duration_seconds",
		Help:    "Time from a driver call's arrival to its answer, including the audit record's fsync, by method.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1 ms to 3.3 s
	}, []string{"method"})
	m.fsyncDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hostpass_audit_fsync_duration_seconds",
		Help:    "Time of each fsync of the audit log (one per batch of records).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 1.5, 26), // 50 µs to 1.3 s, each 1.5 times the last
	})
	m.batchRecords = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hostpass_audit_batch_records",
		Help:    "Records written by each fsync of the audit log.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 to 1024
	})
	m.records = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hostpass_audit_records_total",
		Help: "Audit records made durable, by event (endpoint.join, host.join, audit.checkpoint ...).",
	}, []string{"event"})
	m.drops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hostpass_dropped_lines_total",
		Help: "Lines (log lines, copies of audit records) lost on their way out, by sink: daemon_log (the daemon's stdout or stderr not read, or refusing), syslog (the collector down, slow or refusing), mirror (the audit log's mirror queue full); the audit file has every record.",
	}, []string{"sink"})
	m.watcherLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hostpass_watcher_lag_seconds",
		Help:    "Time from a Docker event to its handling by the watcher.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms to 8 s
	})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hostpass_watcher_reconnects_total",
		Help: "Times the watcher reconnected to Docker's event stream.",
	})
	m.gapSeconds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hostpass_watcher_gap_seconds_total",
		Help: "Seconds during which the watcher did not follow Docker's events, summed over the watch.gap records written.",
	})
	m.hostMode = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hostpass_host_mode_containers",
		Help: "Containers running with --network host now, as the watcher knows them.",
	})
	m.violations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hostpass_policy_violations_total",
		Help: "policy.violation records written: containers found on a hostpass network against --policy-allow.",
	})
	m.writeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hostpass_audit_write_errors_total",
		Help: "Writes or fsyncs of the audit log that failed (disk full, I/O error): each refused the calls whose records it held.",
	})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hostpass_build_info",
		Help: "Always 1; the labels give the running build.",
	}, []string{"version", "commit", "goversion"})
	buildInfo.WithLabelValues(version, commit, runtime.Version()).Set(1)
	m.reg.MustRegister(m.requests, m.requestDuration, m.fsyncDuration, m.batchRecords, m.records,
		m.drops, m.watcherLag, m.reconnects, m.gapSeconds, m.hostMode, m.violations, m.writeErrors, buildInfo,
		lastCheckpoint{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every drop source shows 0 from the start, so that a rate() over it
	// has a series to work on before the first drop.
	m.dropLog = m.drops.WithLabelValues(DropDaemonLog)
	m.dropSyslog = m.drops.WithLabelValues(DropSyslog)
	m.dropMirror = m.drops.WithLabelValues(DropMirror)
	return m
}

// MaxScrapes bounds the scrapes served at once; more are answered 503 at
// once. One Prometheus scrapes one at a time; a client on the socket or the
// port that opens hundreds would otherwise have each gather every metric
// at once. It bounds concurrency, not rate: a client may scrape again as
// soon as each answer arrives, costing up to MaxScrapes gathers at a time.
const MaxScrapes = 4

// Handler serves the registry in Prometheus's exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: MaxScrapes})
}

// Registry is the registry, for tests that gather it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request counts a driver call and its time.
func (m *Metrics) Request(method, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(method, result).Inc()
	m.requestDuration.WithLabelValues(method).Observe(took.Seconds())
}

// Synced is audit.Observer's: recs became durable in one fsync that took
// took. A signed checkpoint among them resets the checkpoint's age; a
// policy.violation counts a violation; a watch.gap adds its window to the
// watcher's gap seconds.
func (m *Metrics) Synced(took time.Duration, recs []audit.Record) {
	if m == nil {
		return
	}
	m.fsyncDuration.Observe(took.Seconds())
	m.batchRecords.Observe(float64(len(recs)))
	checkpoint := false
	for i := range recs {
		r := &recs[i]
		m.records.WithLabelValues(string(r.Event)).Inc()
		switch r.Event {
		case audit.Checkpoint:
			checkpoint = checkpoint || r.Checkpoint != ""
		case audit.PolicyViolation:
			m.violations.Inc()
		case audit.WatchGap:
			// The window closed, and its record is durable: the
			// watcher's gaps are counted from the trail itself.
			if r.Gap != nil && r.Gap.To.After(r.Gap.From) {
				m.gapSeconds.Add(r.Gap.To.Sub(r.Gap.From).Seconds())
			}
		}
	}
	if checkpoint {
		m.mu.Lock()
		m.lastCheckpoint = time.Now()
		m.mu.Unlock()
	}
}

// MirrorDropped is audit.Observer's: the mirror queue dropped a record.
func (m *Metrics) MirrorDropped() {
	if m != nil {
		m.dropMirror.Inc()
	}
}

// LogLinesDropped is logout.Observer's: the daemon's log lost n lines (its
// stdout or stderr was not read, or refused them).
func (m *Metrics) LogLinesDropped(n int) {
	if m != nil {
		m.dropLog.Add(float64(n))
	}
}

// SyslogDropped is sink.Observer's: the syslog sink lost n records (its
// queue was full, the collector refused one twice, or Close gave up).
func (m *Metrics) SyslogDropped(n int) {
	if m != nil {
		m.dropSyslog.Add(float64(n))
	}
}

// Signed says the audit log is signed: the last checkpoint's timestamp is
// exported, 0 until the first of this run is durable, so that an alert on
// its age fires when a signed log cannot write one. An unsigned log has no
// checkpoint, and no such series.
func (m *Metrics) Signed() {
	if m != nil {
		m.mu.Lock()
		m.signed = true
		m.mu.Unlock()
	}
}

// Failed is audit.Observer's: a write or fsync of the audit log failed.
func (m *Metrics) Failed(error) {
	if m != nil {
		m.writeErrors.Inc()
	}
}

// WithoutWatcher unregisters the watcher's metrics, for a daemon run with
// --watch=false: a host-mode gauge at 0 and reconnects at 0 would say "all
// is well" for a watcher that does not run, and an alert would never fire.
// Absent, absent() says it. (policy.violation and watch.gap records come
// from the watcher only.)
func (m *Metrics) WithoutWatcher() {
	if m == nil {
		return
	}
	for _, c := range []prometheus.Collector{m.watcherLag, m.reconnects, m.gapSeconds, m.hostMode, m.violations} {
		m.reg.Unregister(c)
	}
}

// lastCheckpoint reports when the last signed checkpoint became durable, as
// a Unix timestamp (Prometheus's guidance: export the time, and let the
// query take time() - x): a stored age would be stale by the scrape.
type lastCheckpoint struct{ m *Metrics }

var lastCheckpointDesc = prometheus.NewDesc("hostpass_audit_last_checkpoint_timestamp_seconds",
	"Unix time at which the last signed checkpoint (audit.checkpoint) became durable; 0 until this run's first; absent on a log without --sign-key.", nil, nil)

func (c lastCheckpoint) Describe(ch chan<- *prometheus.Desc) { ch <- lastCheckpointDesc }

func (c lastCheckpoint) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	signed, last := c.m.signed, c.m.lastCheckpoint
	c.m.mu.Unlock()
	if !signed && last.IsZero() {
		return
	}
	v := 0.0
	if !last.IsZero() {
		v = float64(last.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(lastCheckpointDesc, prometheus.GaugeValue, v)
}

// The watcher's metrics that no audit record carries: Metrics is a
// watcher.Observer.

// WatcherLag observes the time from a Docker event to its handling.
// A negative lag (the host's clock stepped back between Docker's stamp and
// now) counts as 0: a histogram's _sum must not decrease, or rate(_sum) /
// rate(_count) reads nonsense.
func (m *Metrics) WatcherLag(d time.Duration) {
	if m != nil {
		m.watcherLag.Observe(max(d, 0).Seconds())
	}
}

// Reconnected counts a reconnection to Docker's events. (The gap's seconds
// come from its watch.gap record, through Synced.)
func (m *Metrics) Reconnected() {
	if m != nil {
		m.reconnects.Inc()
	}
}

// HostMode sets the number of --network host containers running now.
func (m *Metrics) HostMode(n int) {
	if m != nil {
		m.hostMode.Set(float64(n))
	}
}

package metrics

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hostpass/hostpass/audit"
)

// TestAuditLogFeedsMetrics: a signed audit log with the metrics as its
// Observer counts its fsyncs, its records by event, and its checkpoint.
func TestAuditLogFeedsMetrics(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sign.key")
	if _, err := audit.NewSignKeyFile(key, "node1"); err != nil {
		t.Fatal(err)
	}
	m := New("v", "c")
	start := time.Now()
	l, err := audit.OpenWith(filepath.Join(dir, "audit.jsonl"), audit.Options{SignKey: key, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil { // audit.restart and a checkpoint
		t.Fatal(err)
	}
	for range 3 {
		if err := l.Append(audit.Record{Event: audit.EndpointJoin, Outcome: audit.OK}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.records.WithLabelValues(string(audit.EndpointJoin))); got != 3 {
		t.Errorf("hostpass_audit_records_total{event=%q} = %v, want 3", audit.EndpointJoin, got)
	}
	if got := testutil.ToFloat64(m.records.WithLabelValues(string(audit.Checkpoint))); got < 1 {
		t.Errorf("hostpass_audit_records_total{event=%q} = %v, want 1 or more", audit.Checkpoint, got)
	}
	if got := testutil.ToFloat64(lastCheckpoint{m}); got < float64(start.Unix()) {
		t.Errorf("hostpass_audit_last_checkpoint_timestamp_seconds: %v after a signed start at %v, want that time or later", got, start.Unix())
	}
	if n := testutil.CollectAndCount(m.fsyncDuration); n != 1 {
		t.Fatalf("fsync histogram: %d series", n)
	}
	if got := histCount(t, m, "hostpass_audit_fsync_duration_seconds"); got < 4 {
		t.Errorf("fsyncs observed: %d, want at least 4 (start, 3 appends)", got)
	}
}

// histCount is the sample count of the histogram called name.
func histCount(t *testing.T, m *Metrics, name string) uint64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no %s in the registry", name)
	return 0
}

package daemon

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
)

// infoLog is a daemon log at the default level, collected.
func infoLog(level logrus.Level) (*logrus.Entry, *logged) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(level)
	got := &logged{}
	log.AddHook(got)
	return logrus.NewEntry(log), got
}

// At the default info level the daemon's log carries the alarms, at
// warning whatever their outcome: no refused call shows them, and an
// operator reading dockerd's log must.
func TestDaemonLogCarriesAlarmsAtInfo(t *testing.T) {
	for _, rec := range []audit.Record{
		{Event: audit.PolicyViolation, Outcome: audit.OK, Action: audit.ActionRecorded},
		{Event: audit.PolicyViolation, Outcome: audit.OK, Action: audit.ActionStopped},
		{Event: audit.PolicyViolation, Outcome: audit.Refused, Action: audit.ActionStopFailed},
		{Event: audit.WatchGap, Outcome: audit.OK},
		{Event: audit.Lost, Outcome: audit.OK},
		{Event: audit.TornTail, Outcome: audit.OK},
		{Event: audit.EndpointStale, Outcome: audit.OK, ObservedLate: true},
	} {
		name := string(rec.Event)
		if rec.Action != "" {
			name += "/" + rec.Action
		}
		t.Run(name, func(t *testing.T) {
			entry, got := infoLog(logrus.InfoLevel)
			line := `{"event":"` + string(rec.Event) + `"}`
			logRecord(entry, rec, []byte(line))
			e := got.find("audit")
			if e == nil || e.Level != logrus.WarnLevel || e.Data["record"] != line {
				t.Errorf("daemon log at info has %v; want the %s record at warning", e, rec.Event)
			}
		})
	}
}

// A refused record shows at info; an ok one that is no alarm only at debug.
func TestDaemonLogCarriesRefusedAtInfoAndEveryRecordAtDebug(t *testing.T) {
	refused := audit.Record{Event: audit.EndpointCreate, Outcome: audit.Refused}
	ok := audit.Record{Event: audit.EndpointJoin, Outcome: audit.OK}
	entry, got := infoLog(logrus.InfoLevel)
	logRecord(entry, refused, []byte("refused"))
	logRecord(entry, ok, []byte("ok"))
	if n := got.count("audit"); n != 1 || got.find("audit").Level != logrus.InfoLevel || got.find("audit").Data["record"] != "refused" {
		t.Errorf("daemon log at info has %d audit entries, first %v; want the refused record alone, at info", n, got.find("audit"))
	}
	entry, got = infoLog(logrus.DebugLevel)
	logRecord(entry, ok, []byte("ok"))
	if e := got.find("audit"); e == nil || e.Level != logrus.DebugLevel || e.Data["record"] != "ok" {
		t.Errorf("daemon log at debug has %v; want the ok endpoint.join record at debug", e)
	}
}

// Through Run: a partial line a crash left is set aside, and its
// audit.torn_tail record reaches the daemon's log at the default level.
func TestRunLogsTornTailAtInfo(t *testing.T) {
	cfg := testConfig(t)
	log := withLog(&cfg)
	if err := os.MkdirAll(filepath.Dir(cfg.AuditLog), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.AuditLog, []byte(`{"time":"2026-11-28T10:00:00Z","ev`), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, cfg)
	e := log.await(t, "audit")
	if line, _ := e.Data["record"].(string); e.Level != logrus.WarnLevel || !strings.Contains(line, `"event":"audit.torn_tail"`) {
		t.Errorf("daemon log's audit entry at %s: %v; want the audit.torn_tail record, at warning", e.Level, e.Data)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, e := range log.entries {
		if strings.Contains(e.Message, "partial line") {
			t.Errorf("the torn tail logged twice: also %q at %s", e.Message, e.Level)
		}
	}
}

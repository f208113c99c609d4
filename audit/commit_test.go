package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeptRecordsAreCappedAndTheRestCountedInAuditLost(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "logs")
	os.WriteFile(blocker, nil, 0o640)
	path := filepath.Join(blocker, "audit.jsonl")
	l, _ := OpenWith(path, Options{MaxKept: 3})
	defer l.Close()
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 6; i++ {
		err := l.AppendOrKeep(Record{Time: t0.Add(time.Duration(i) * time.Second), Event: EndpointLeave, Outcome: OK})
		if i >= 3 && (err == nil || !strings.Contains(err.Error(), "not kept either: 3 records already wait in memory")) {
			t.Errorf("record %d past the cap: got %v, want it refused naming the limit", i, err)
		}
	}
	if n := l.Pending(); n != 3 {
		t.Fatalf("pending %d, want the cap of 3", n)
	}
	os.Remove(blocker)
	deadline := time.Now().Add(5 * time.Second)
	for l.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	l.Close()
	recs := readRecords(t, path)
	wantSeqs(t, recs, EndpointLeave, EndpointLeave, EndpointLeave, Lost)
	lost := recs[3].Lost
	if lost == nil || lost.Records != 3 || !lost.First.Equal(t0.Add(3*time.Second)) || !lost.Last.Equal(t0.Add(5*time.Second)) {
		t.Errorf("audit.lost %+v, want 3 records from 10:00:03 to 10:00:05", recs[3])
	}
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

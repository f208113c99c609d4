package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func readRecords(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q is not a record: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func wantSeqs(t *testing.T, recs []Record, events ...Event) {
	t.Helper()
	if len(recs) != len(events) {
		t.Fatalf("got %d records, want %d: %+v", len(recs), len(events), recs)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.Event != events[i] {
			t.Errorf("record %d: seq %d event %q, want seq %d event %q", i, r.Seq, r.Event, i+1, events[i])
		}
	}
}

func TestAppendNumbersRecordsAndResumesAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	var mirrored []string
	l := Open(path, func(line []byte) { mirrored = append(mirrored, string(line)) })
	for _, ev := range []Event{NetworkCreate, EndpointCreate} {
		if err := l.Append(Record{Time: time.Now().UTC(), Event: ev, Outcome: OK}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = Open(path, nil)
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	wantSeqs(t, readRecords(t, path), NetworkCreate, EndpointCreate, EndpointJoin)
	if len(mirrored) != 2 || !strings.Contains(mirrored[1], `"seq":2`) {
		t.Errorf("mirror got %q, want the two durable lines", mirrored)
	}
}

func TestUnwritableLogRefusesAppendAndKeepsTeardown(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "logs")
	os.WriteFile(blocker, nil, 0o640) // a file where the log's directory should be
	path := filepath.Join(blocker, "audit.jsonl")
	l := Open(path, nil)
	defer l.Close()

	err := l.Append(Record{Event: EndpointJoin, Outcome: OK})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Append: got %v, want unavailable naming the cause", err)
	}
	if err := l.AppendOrKeep(Record{Event: EndpointLeave, Outcome: OK}); err == nil {
		t.Fatal("AppendOrKeep: want an error while the log is unwritable")
	}
	if err := l.AppendOrKeep(Record{Event: EndpointDelete, Outcome: OK}); err == nil {
		t.Fatal("AppendOrKeep: want an error while the log is unwritable")
	}
	if n := l.Pending(); n != 2 {
		t.Fatalf("pending = %d, want the 2 teardown records", n)
	}

	os.Remove(blocker) // the disk is writable again; the retry loop writes them
	deadline := time.Now().Add(5 * time.Second)
	for l.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	wantSeqs(t, readRecords(t, path), EndpointLeave, EndpointDelete)
}

func TestFullDiskRefusesAppendNamingTheCause(t *testing.T) {
	// A link to /dev/full in a folder of the test's own: every write fails
	// with ENOSPC, and what the log writes beside its file (the .uncut
	// marker) lands there, not in /dev, so the test needs no root.
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	l := Open(path, nil)
	defer l.Close()
	err := l.Append(Record{Event: NetworkCreate, Outcome: OK})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("got %v, want unavailable: no space left on device", err)
	}
}

func TestBlockedMirrorNeverHoldsUpAppend(t *testing.T) {
	release := make(chan struct{})
	var got []string
	var mu sync.Mutex
	l, _ := OpenWith(filepath.Join(t.TempDir(), "audit.jsonl"), Options{Mirror: func(r Record, _ []byte) {
		<-release // a stdout nobody reads
		mu.Lock()
		got = append(got, string(r.Event))
		mu.Unlock()
	}})
	for i := 0; i < mirrorQueue+10; i++ {
		if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
			t.Fatal(err)
		}
	}
	if l.MirrorDropped() == 0 {
		t.Errorf("mirror queue of %d took %d records without dropping", mirrorQueue, mirrorQueue+10)
	}
	close(release)
	l.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || len(got) > mirrorQueue+1 {
		t.Errorf("mirror got %d records, want the queued ones once released", len(got))
	}
}

// A write's lines share one buffer; a mirror that appends to the line it
// gets (as a logger adding a newline might) must not write over the next.
func TestMirrorAppendingToALineLeavesTheNextWhole(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "logs")
	os.WriteFile(blocker, nil, 0o640) // unwritable until removed
	path := filepath.Join(blocker, "audit.jsonl")
	var mirrored []string
	l := Open(path, func(line []byte) {
		mirrored = append(mirrored, string(line))
		_ = append(line, "XXXXXXXX"...)
	})
	for _, ev := range []Event{EndpointLeave, EndpointDelete} {
		if err := l.AppendOrKeep(Record{Event: ev, Outcome: OK}); err == nil {
			t.Fatal("AppendOrKeep: want an error while the log is unwritable")
		}
	}
	os.Remove(blocker)
	// The kept records and this one share a write.
	if err := l.Append(Record{Event: NetworkDelete, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if strings.Join(mirrored, "\n") != strings.Join(want, "\n") {
		t.Errorf("mirror got\n%s\nwant the file's lines\n%s", strings.Join(mirrored, "\n"), strings.Join(want, "\n"))
	}
}

package audit

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A line the mirror holds on to keeps only itself alive, not the batch's
// buffer: a record of 1 MiB of '<' is encoded to 6 MiB (each '<' is
// \u003c) before it is cut to MaxRecord, and a mirror (the daemon log's
// queue, syslog's) that keeps the line must not keep those 6 MiB.
func TestMirroredLineDoesNotKeepTheBatchBuffer(t *testing.T) {
	got := make(chan []byte, 1)
	l, err := OpenWith(filepath.Join(t.TempDir(), "audit.jsonl"), Options{Mirror: func(_ Record, line []byte) { got <- line }})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Record{Event: NetworkCreate, Outcome: Refused, Detail: strings.Repeat("<", 1<<20)}); err != nil {
		t.Fatal(err)
	}
	line := <-got
	n := len(line)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Two collections: the first leaves what encoding/json pooled (its
	// own 6 MiB) in the pool's victim cache, the second frees it.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	runtime.KeepAlive(line) // held until here, released from here on
	runtime.GC()
	runtime.ReadMemStats(&after)
	if freed := int64(before.HeapAlloc) - int64(after.HeapAlloc); freed > 2*MaxRecord {
		t.Errorf("releasing the mirrored line (%d bytes) freed %d bytes: the line kept the batch's buffer alive", n, freed)
	}
}

// The mirror's queue costs little memory: its slots hold pointers, not
// records (a Record is some 700 bytes, and 4,096 slots of them 2.7 MiB,
// resident once that many records have passed through).
func TestMirrorQueueIsSmall(t *testing.T) {
	dir := t.TempDir()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, err := OpenWith(filepath.Join(dir, "audit.jsonl"), Options{Mirror: func(Record, []byte) {}})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10 {
		t.Errorf("opening a log with a mirror allocated %d bytes, want at most 256 KiB: the mirror's queue of %d slots holds records by value", grew, mirrorQueue)
	}
}

// capFile remembers the capacity of the buffer each write came from.
type capFile struct {
	logFile
	caps *[][2]int // len, cap
}

func (f capFile) Write(b []byte) (int, error) {
	*f.caps = append(*f.caps, [2]int{len(b), cap(b)})
	return f.logFile.Write(b)
}

// The write of records kept during an outage allocates about what they
// take, not a kilobyte each: their encoded size is known.
func TestKeptRecordsAreWrittenFromABufferOfTheirSize(t *testing.T) {
	var caps [][2]int // written by the committer, read once it is closed
	orig := openLogFile
	openLogFile = func(path string) (logFile, error) {
		lf, err := orig(path)
		if err != nil {
			return nil, err
		}
		return capFile{lf, &caps}, nil
	}
	t.Cleanup(func() { openLogFile = orig })
	dir := t.TempDir()
	blocker := filepath.Join(dir, "logs")
	if err := os.WriteFile(blocker, nil, 0o640); err != nil { // a file where the log's directory should be
		t.Fatal(err)
	}
	l := Open(filepath.Join(blocker, "audit.jsonl"), nil)
	const kept = 1000
	for i := 0; i < kept; i++ {
		if err := l.AppendOrKeep(Record{Event: EndpointLeave, Outcome: OK, NetworkID: strings.Repeat("n", 64), EndpointID: strings.Repeat("e", 64)}); err == nil {
			t.Fatal("AppendOrKeep: want an error while the log is unwritable")
		}
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil { // writes the kept records
		t.Fatal(err)
	}
	if len(caps) == 0 {
		t.Fatal("nothing was written")
	}
	if n, c := caps[0][0], caps[0][1]; n < kept*100 || c > n+n/4 {
		t.Errorf("the %d kept records, %d bytes, were written from a buffer of %d bytes; want at most a quarter more than they take", kept, n, c)
	}
}

// MirrorWants keeps the records the mirror does not want out of its queue:
// it gets only the refused one here, and none counts as dropped.
func TestMirrorWantsFiltersBeforeTheQueue(t *testing.T) {
	var got []Event
	l, err := OpenWith(filepath.Join(t.TempDir(), "audit.jsonl"), Options{
		Mirror:      func(rec Record, _ []byte) { got = append(got, rec.Event) }, // one goroutine; read after Close
		MirrorWants: func(rec Record) bool { return rec.Outcome == Refused },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []Record{{Event: NetworkCreate, Outcome: OK}, {Event: EndpointJoin, Outcome: Refused}, {Event: EndpointLeave, Outcome: OK}} {
		if err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != EndpointJoin {
		t.Errorf("mirrored %v; want only the refused %s", got, EndpointJoin)
	}
	if n := l.MirrorDropped(); n != 0 {
		t.Errorf("MirrorDropped %d; want 0: records not wanted are not drops", n)
	}
}

package audit

import (
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

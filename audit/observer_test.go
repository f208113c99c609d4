package audit

import (
	"errors"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// failures keeps the write errors the writer reported.
type failures struct {
	mu   sync.Mutex
	errs []error
}

func (*failures) Synced(time.Duration, []Record) {}
func (*failures) MirrorDropped()                 {}
func (f *failures) Failed(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

// TestObserverHearsFailedWritesAndFsyncs: a write that meets a full disk
// and an fsync that meets an I/O error are each reported once, with their
// error, and the calls are refused; a write that succeeds reports none.
func TestObserverHearsFailedWritesAndFsyncs(t *testing.T) {
	disk := injectFaults(t)
	obs := &failures{}
	l, err := OpenWith(filepath.Join(t.TempDir(), "audit.jsonl"), Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	disk.set(syscall.ENOSPC, nil, nil)
	if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append with the disk full: %v; want ENOSPC", err)
	}
	disk.set(nil, syscall.EIO, nil)
	if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append with fsync failing: %v; want EIO", err)
	}
	disk.set(nil, nil, nil)
	if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.errs) != 2 || !errors.Is(obs.errs[0], syscall.ENOSPC) || !errors.Is(obs.errs[1], syscall.EIO) {
		t.Errorf("failures reported: %v; want [ENOSPC EIO]", obs.errs)
	}
}

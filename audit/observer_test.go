package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// TestObserverHearsALogItCannotOpen: a log whose folder cannot be made
// (here its parent is a file) fails each write at opening the file: each
// is reported, with its error, as a failed write or fsync is.
func TestObserverHearsALogItCannotOpen(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	obs := &failures{}
	l, err := OpenWith(filepath.Join(parent, "audit.jsonl"), Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 2 {
		if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); !errors.Is(err, ErrUnavailable) || !strings.HasSuffix(err.Error(), "mkdir "+parent+": not a directory") {
			t.Fatalf("Append to a log it cannot open: %v; want ErrUnavailable, mkdir %s: not a directory", err, parent)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.errs) != 2 || !strings.HasSuffix(obs.errs[0].Error(), "mkdir "+parent+": not a directory") || obs.errs[1].Error() != obs.errs[0].Error() {
		t.Errorf("failures reported: %v; want two: mkdir %s: not a directory", obs.errs, parent)
	}
}

package audit

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// faults makes the log's file fail as a full or broken disk would.
type faults struct {
	mu                    sync.Mutex
	write, sync, truncate error
}

func (f *faults) set(write, sync, truncate error) {
	f.mu.Lock()
	f.write, f.sync, f.truncate = write, sync, truncate
	f.mu.Unlock()
}

func (f *faults) get() (write, sync, truncate error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.write, f.sync, f.truncate
}

type faultyFile struct {
	logFile
	f *faults
}

func (ff faultyFile) Write(p []byte) (int, error) {
	if err, _, _ := ff.f.get(); err != nil {
		return 0, err
	}
	return ff.logFile.Write(p)
}

func (ff faultyFile) Sync() error {
	if _, err, _ := ff.f.get(); err != nil {
		return err
	}
	return ff.logFile.Sync()
}

func (ff faultyFile) Truncate(size int64) error {
	if _, _, err := ff.f.get(); err != nil {
		return err
	}
	return ff.logFile.Truncate(size)
}

// injectFaults wraps every file the log opens until the test ends.
func injectFaults(t *testing.T) *faults {
	f := &faults{}
	orig := openLogFile
	openLogFile = func(path string) (logFile, error) {
		lf, err := orig(path)
		if err != nil {
			return nil, err
		}
		return faultyFile{lf, f}, nil
	}
	t.Cleanup(func() { openLogFile = orig })
	return f
}

// appendLine appends a record with a detail of size bytes to the log at
// path, chained to its last record: what hostpass 3 wrote for a 600 kB tag.
func appendLine(t *testing.T, path string, size int, key []byte, epoch *uint64) {
	t.Helper()
	ls := lines(t, path)
	var last Record
	json.Unmarshal([]byte(ls[len(ls)-1]), &last)
	rec := Record{Time: time.Now().UTC(), Seq: last.Seq + 1, Event: NetworkCreate, Schema: Schema, Outcome: Refused,
		Detail: strings.Repeat("x", size), Epoch: epoch, Prev: last.Hash}
	line, err := encode(&rec, key)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(append(line, '\n'))
	f.Close()
}

// allocated runs fn and returns the bytes it allocated.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestReopenAfterALastLineOfTwoMegabytes(t *testing.T) {
	initial, daemonKey := newKey(t)
	path, _ := writeLog(t, 12, 0, daemonKey) // epochs of 10, and the stop ends epoch 1: the key is at epoch 2
	epoch, key, _ := ReadKeyFile(daemonKey)
	appendLine(t, path, 2<<20, key, &epoch)

	var err error
	mem := allocated(func() {
		l, _ := OpenWith(path, Options{SealKey: daemonKey, EpochRecords: 10, EpochInterval: time.Hour})
		err = l.Append(Record{Event: EndpointJoin, Outcome: OK})
		l.Close()
	})
	if err != nil {
		t.Fatalf("append after a 2 MB last line: %v", err)
	}
	if mem > 1<<20 {
		t.Errorf("reopening allocated %d bytes for a 2 MB last line, want under 1 MiB whatever its length", mem)
	}
	ls := lines(t, path)
	var r Record
	json.Unmarshal([]byte(ls[len(ls)-2]), &r) // the last is the stop's audit.epoch
	if r.Seq != 16 || r.Epoch == nil || *r.Epoch != 2 {
		t.Errorf("the append got seq %d epoch %v, want seq 16 in epoch 2", r.Seq, r.Epoch)
	}
	files, _ := Files(path)
	if _, err := Verify(files, VerifyOptions{Key: initial}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestReopenAfterARotatedFileEndingInALongLine(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "gzipped"}[gz], func(t *testing.T) {
			path, _ := writeLog(t, 3, 0, "")
			appendLine(t, path, 2<<20, nil, nil)
			rotated := rotatedName(path, 1)
			if gz {
				b, _ := os.ReadFile(path)
				var z bytes.Buffer
				w := gzip.NewWriter(&z)
				w.Write(b)
				w.Close()
				rotated += ".gz"
				os.WriteFile(rotated, z.Bytes(), 0o640)
				os.Remove(path)
			} else {
				os.Rename(path, rotated)
			}
			os.WriteFile(path, nil, 0o640)

			var err error
			mem := allocated(func() {
				l := Open(path, nil)
				err = l.Append(Record{Event: EndpointJoin, Outcome: OK})
				l.Close()
			})
			if err != nil {
				t.Fatalf("append after a rotated file ending in a 2 MB line: %v", err)
			}
			if mem > 1<<20 {
				t.Errorf("reopening allocated %d bytes, want under 1 MiB whatever the rotated file's last line", mem)
			}
			if recs := readRecords(t, path); len(recs) != 1 || recs[0].Seq != 5 {
				t.Fatalf("current file %+v, want seq 5", recs)
			}
			if sum, err := Verify([]string{rotated, path}, VerifyOptions{}); err != nil || sum.Records != 5 {
				t.Fatalf("verify: %+v %v", sum, err)
			}
		})
	}
}

func TestFailedWriteThatCannotBeCutOffIsNeverChainedTo(t *testing.T) {
	disk := injectFaults(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	defer l.Close()
	if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	// The write lands whole, its fsync fails, and so does cutting it off.
	disk.set(nil, syscall.EIO, syscall.EIO)
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK, EndpointID: "told-failed"}); err == nil {
		t.Fatal("append with a failing fsync: want an error")
	}
	disk.set(nil, nil, nil)
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK, EndpointID: "e2"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs := readRecords(t, path)
	wantSeqs(t, recs, NetworkCreate, TornTail, EndpointJoin)
	if recs[2].EndpointID != "e2" || !strings.Contains(recs[1].Detail, "a write that failed left") || !strings.Contains(recs[1].Detail, "input/output error") {
		t.Errorf("records %+v, want the failed write set aside and named", recs)
	}
	saved, _ := filepath.Glob(path + ".torn-*")
	if b, _ := os.ReadFile(saved[0]); len(saved) != 1 || !bytes.Contains(b, []byte("told-failed")) {
		t.Errorf("side files %v, want the failed write's record in one", saved)
	}
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestTornTailIsDurableBeforeItIsCutOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	l.Append(Record{Event: NetworkCreate, Outcome: OK})
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-`)
	f.Close()
	st, _ := os.Stat(path)

	var synced []string
	orig := syncFile
	syncFile = func(f *os.File) error {
		now, _ := os.Stat(path)
		synced = append(synced, filepath.Base(f.Name()))
		if now.Size() != st.Size() {
			t.Errorf("%s synced after the log was cut to %d bytes: a crash in between loses the torn bytes", f.Name(), now.Size())
		}
		return orig(f)
	}
	defer func() { syncFile = orig }()
	l = Open(path, nil)
	if err := l.Append(Record{Event: NetworkDelete, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if len(synced) != 1 || !strings.HasPrefix(synced[0], "audit.jsonl.torn-") {
		t.Errorf("synced %v, want the side file, before the log is cut", synced)
	}
}

// The directories are made by atomicfile.MkdirAll, whose tests check that
// the parent of each is synced; here, that the new log file's own entry is.
func TestCreatedDirectoriesAreDurable(t *testing.T) {
	root := t.TempDir()
	var synced []string
	orig := syncDir
	syncDir = func(dir string) error { synced = append(synced, dir); return orig(dir) }
	defer func() { syncDir = orig }()
	l := Open(filepath.Join(root, "var", "log", "audit.jsonl"), nil)
	if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, dir := range []string{filepath.Join(root, "var", "log")} {
		found := false
		for _, s := range synced {
			found = found || s == dir
		}
		if !found {
			t.Errorf("%s not synced (synced: %v): the directory holding a new entry must be", dir, synced)
		}
	}
}

// A write whose fsync and cut both fail leaves records whose callers were
// told "failed" in the file. A restart, clean or not, before the cut
// succeeds must set them aside, not chain on from them: the acknowledged
// size survives in <log>.uncut.
func TestRecordsToldFailedStayOutOfTheChainAcrossARestart(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			disk := injectFaults(t)
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l := Open(path, nil)
			if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); err != nil {
				t.Fatal(err)
			}
			disk.set(nil, os.ErrInvalid, os.ErrInvalid) // fsync fails, and so does the cut
			if err := l.Append(Record{Event: EndpointJoin, Outcome: OK, EndpointID: "told-failed"}); err == nil {
				t.Fatal("the fsync failed, but Append reported no error")
			}
			disk.set(nil, nil, nil)
			if clean {
				l.Close()
			} // else: as after kill -9, the old Log is simply abandoned
			if _, err := os.Stat(path + ".uncut"); err != nil {
				t.Errorf("no marker of the acknowledged size: %v", err)
			}
			l = Open(path, nil)
			if err := l.Append(Record{Event: EndpointJoin, Outcome: OK, EndpointID: "e2"}); err != nil {
				t.Fatal(err)
			}
			l.Close()
			recs := readRecords(t, path)
			wantSeqs(t, recs, NetworkCreate, TornTail, EndpointJoin)
			if recs[2].EndpointID != "e2" || !strings.Contains(recs[1].Detail, "their callers were told the write failed") {
				t.Errorf("records %+v, want the failed join set aside and e2 chained", recs)
			}
			if _, err := os.Stat(path + ".uncut"); !os.IsNotExist(err) {
				t.Errorf("the marker is still there once honoured: %v", err)
			}
			if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestReopenSetsAsidePartialLineLeftByACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-`) // killed mid-write
	f.Close()
	l = Open(path, nil)
	if err := l.Append(Record{Event: NetworkDelete, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs := readRecords(t, path)
	wantSeqs(t, recs, NetworkCreate, TornTail, NetworkDelete)
	saved, _ := filepath.Glob(path + ".torn-*")
	if len(saved) != 1 || !strings.Contains(recs[1].Detail, "partial line of 14 bytes") || !strings.Contains(recs[1].Detail, saved[0]) {
		t.Fatalf("torn tail record %+v, saved files %v: want the 14 bytes reported and set aside", recs[1], saved)
	}
	if b, _ := os.ReadFile(saved[0]); string(b) != `{"time":"2026-` {
		t.Errorf("set-aside bytes %q, want the partial line", b)
	}
}

func TestLastLineNotARecordIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	os.WriteFile(path, []byte("hello\n"), 0o640)
	err := Open(path, nil).Append(Record{Event: NetworkCreate})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "last line is not an audit record") {
		t.Fatalf("got %v, want unavailable: last line is not an audit record", err)
	}
}

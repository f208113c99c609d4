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

func TestRetryingOpenDoesNotReadTheRotatedFileAgain(t *testing.T) {
	path, _ := writeLog(t, 3, 0, "")
	rotated := rotatedName(path, 1)
	os.Rename(path, rotated)
	os.WriteFile(path, nil, 0o640)
	disk := injectFaults(t)
	disk.set(syscall.ENOSPC, nil, nil)
	l := Open(path, nil)
	defer l.Close()
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); !errors.Is(err, syscall.ENOSPC) && !strings.Contains(err.Error(), "no space") {
		t.Fatalf("append on a full disk: %v", err)
	}
	// Same size and time: were it read again, this would break the open.
	st, _ := os.Stat(rotated)
	os.WriteFile(rotated, bytes.Repeat([]byte("?"), int(st.Size())), 0o640)
	os.Chtimes(rotated, st.ModTime(), st.ModTime())

	disk.set(nil, nil, nil)
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
		t.Fatalf("append once the disk has room: %v (the rotated file was read again)", err)
	}
	if recs := readRecords(t, path); len(recs) != 1 || recs[0].Seq != 4 {
		t.Fatalf("current file %+v, want seq 4", recs)
	}
}

func TestTimedKeyEvolutionThatFailedIsRetried(t *testing.T) {
	initial, daemonKey := newKey(t)
	disk := injectFaults(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{SealKey: daemonKey, EpochRecords: 1000, EpochInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	disk.set(syscall.EIO, nil, nil) // the epoch's time comes while the disk fails
	time.Sleep(400 * time.Millisecond)
	if epoch, _, _ := ReadKeyFile(daemonKey); epoch != 0 {
		t.Fatalf("key at epoch %d while the disk failed, want 0: an epoch must not end without its record", epoch)
	}
	disk.set(nil, nil, nil)
	deadline := time.Now().Add(5 * time.Second)
	for epoch, _, _ := ReadKeyFile(daemonKey); epoch == 0; epoch, _, _ = ReadKeyFile(daemonKey) {
		if time.Now().After(deadline) {
			t.Fatal("the key did not evolve once the disk worked again: a failed timed evolution was never retried")
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.Close()
	wantSeqs(t, readRecords(t, path), EndpointJoin, EpochEnd)
	if _, err := Verify([]string{path}, VerifyOptions{Key: initial}); err != nil {
		t.Fatal(err)
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

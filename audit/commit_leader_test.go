package audit

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// committers tells, for each write that became durable or failed, whether
// the run goroutine made it or a caller did.
type committers struct {
	mu                          sync.Mutex
	byRun, byCaller             int
	failedByRun, failedByCaller int
}

// onRun says the calling goroutine is the log's run goroutine.
func onRun() bool {
	buf := make([]byte, 64<<10)
	return bytes.Contains(buf[:runtime.Stack(buf, false)], []byte("audit.(*Log).run("))
}

func (c *committers) Synced(time.Duration, []Record) {
	run := onRun()
	c.mu.Lock()
	defer c.mu.Unlock()
	if run {
		c.byRun++
	} else {
		c.byCaller++
	}
}

func (c *committers) Failed(error) {
	run := onRun()
	c.mu.Lock()
	defer c.mu.Unlock()
	if run {
		c.failedByRun++
	} else {
		c.failedByCaller++
	}
}

func (*committers) MirrorDropped() {}

func (c *committers) counts() (byRun, byCaller, failedByRun, failedByCaller int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byRun, c.byCaller, c.failedByRun, c.failedByCaller
}

// A lone caller finds the log idle and writes its record itself: the
// run goroutine never takes part, which spares two hand-offs between
// goroutines per record.
func TestLoneCallerCommitsItsOwnRecord(t *testing.T) {
	obs := &committers{}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	// run holds the lock for a moment as it starts (reading its timers):
	// a caller then, not alone, hands its record over. Idle means run is
	// waiting in its select.
	waitRunIdle(t)
	for i := 0; i < 3; i++ {
		if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.AppendOrKeep(Record{Event: EndpointLeave, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	if byRun, byCaller, _, _ := obs.counts(); byRun != 0 || byCaller != 4 {
		t.Errorf("writes by run %d, by the callers %d; want 0 and 4: a lone caller commits its own record", byRun, byCaller)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, readRecords(t, path), EndpointJoin, EndpointJoin, EndpointJoin, EndpointLeave)
}

// waitRunIdle waits until the log's run goroutine waits in its select.
func waitRunIdle(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		dump := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(dump, "\n\n") {
			if strings.Contains(g, "[select") && strings.Contains(g, "audit.(*Log).run(") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log's run goroutine not waiting after 10s:\n%s", dump)
		}
		time.Sleep(time.Millisecond)
	}
}

// Callers at once, some committing themselves and some handing their
// records to run, all end up durable in one chain, each caller's records
// in the order it made them.
func TestConcurrentCallersAreAllDurableInOneChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const callers, each = 16, 40
	var wg sync.WaitGroup
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Append(Record{Event: EndpointJoin, Outcome: OK, Detail: fmt.Sprintf("%d/%d", g, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, path)
	if len(recs) != callers*each {
		t.Fatalf("%d records, want %d", len(recs), callers*each)
	}
	next := make([]int, callers) // each caller's next record
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		var g, n int
		if _, err := fmt.Sscanf(r.Detail, "%d/%d", &g, &n); err != nil {
			t.Fatalf("seq %d: detail %q: %v", r.Seq, r.Detail, err)
		}
		if n != next[g] {
			t.Fatalf("seq %d is caller %d's record %d, want its record %d: a caller's records out of order, or one twice", r.Seq, g, n, next[g])
		}
		next[g]++
	}
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Close racing appends: every append that succeeded is in the log before
// audit.stop, none started after Close returned succeeds, and nothing
// hangs.
func TestCloseRacingAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	var closed atomic.Bool // Close has returned
	var succeeded atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				after := closed.Load()
				err := l.Append(Record{Event: EndpointJoin, Outcome: OK})
				if err == nil {
					succeeded.Add(1)
					if after {
						t.Error("an append started after Close returned succeeded")
						return
					}
					continue
				}
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "the audit log is closed") {
					t.Errorf("append refused with %v, want the log is closed", err)
				}
				if after {
					return
				}
			}
		}()
	}
	for succeeded.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	finished := make(chan struct{})
	go func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		closed.Store(true)
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("Close and the appends racing it did not return within 30s")
	}
	recs := readRecords(t, path)
	joins := 0
	for _, r := range recs[:len(recs)-1] {
		if r.Event == EndpointJoin {
			joins++
		}
	}
	if last := recs[len(recs)-1].Event; last != Stop {
		t.Errorf("last record %s, want %s", last, Stop)
	}
	if int64(joins) != succeeded.Load() {
		t.Errorf("%d joins before audit.stop, and %d appends succeeded", joins, succeeded.Load())
	}
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A write that fails on a caller's own commit keeps its teardown records,
// counts those past the limit in audit.lost and refuses the rest, as run
// does; the run goroutine, woken by the caller, writes them all once the
// disk is back, with no caller appending again.
func TestCallersFailedCommitIsKeptAndRetriedByRun(t *testing.T) {
	disk := injectFaults(t)
	obs := &committers{}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{Observer: obs, MaxKept: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); err != nil { // the file is open
		t.Fatal(err)
	}
	disk.set(nil, syscall.ENOSPC, nil)
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		if i == 1 {
			// The log was idle: the first failed on its caller. (Later
			// callers may find run arming its retry, and hand theirs to
			// it.)
			if _, _, failedByRun, failedByCaller := obs.counts(); failedByRun != 0 || failedByCaller != 1 {
				t.Errorf("failed writes by run %d, by the caller %d; want 0 and 1", failedByRun, failedByCaller)
			}
		}
		err := l.AppendOrKeep(Record{Time: t0.Add(time.Duration(i) * time.Second), Event: EndpointLeave, Outcome: OK})
		switch {
		case err == nil || !errors.Is(err, ErrUnavailable):
			t.Errorf("teardown %d: %v, want it refused as unavailable", i, err)
		case i < 2 && strings.Contains(err.Error(), "not kept either"):
			t.Errorf("teardown %d: %v, want it kept", i, err)
		case i == 2 && !strings.Contains(err.Error(), "not kept either: 2 records already wait in memory"):
			t.Errorf("teardown %d: %v, want it counted past the limit of 2", i, err)
		}
	}
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err == nil || !errors.Is(err, ErrUnavailable) {
		t.Errorf("join on a full disk: %v, want it refused", err)
	}
	if n := l.Pending(); n != 2 {
		t.Errorf("pending %d, want the 2 teardown records kept", n)
	}
	if _, _, failedByRun, failedByCaller := obs.counts(); failedByRun+failedByCaller != 4 {
		t.Errorf("failed writes by run %d, by the callers %d; want 4 in all, one per call", failedByRun, failedByCaller)
	}
	disk.set(nil, nil, nil)
	deadline := time.Now().Add(5 * time.Second)
	for l.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := l.Pending(); n != 0 {
		t.Fatalf("pending %d 5s after the disk is back, want the retry to have written them", n)
	}
	if byRun, _, _, _ := obs.counts(); byRun != 1 {
		t.Errorf("writes by run %d, want the retry's 1", byRun)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, path)
	wantSeqs(t, recs, NetworkCreate, EndpointLeave, EndpointLeave, Lost)
	if lost := recs[3].Lost; lost == nil || lost.Records != 1 || !lost.First.Equal(t0.Add(2*time.Second)) {
		t.Errorf("audit.lost %+v, want the third teardown counted", recs[3])
	}
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A caller's commit that starts an epoch starts its timer: run, idle,
// wakes to wait on it, and the epoch ends on time with no record after.
func TestEpochTimerStartedByACallerEndsTheEpoch(t *testing.T) {
	initial, daemonKey := newKey(t)
	obs := &committers{}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{SealKey: daemonKey, Observer: obs, EpochRecords: 2, EpochInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 2; i++ { // epoch 0 ends by its records
		if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // run is idle
	byRun, _, _, _ := obs.counts()
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil { // epoch 1's first: its timer starts
		t.Fatal(err)
	}
	if after, _, _, _ := obs.counts(); after != byRun {
		t.Fatal("run wrote the record that started epoch 1; want its caller to")
	}
	deadline := time.Now().Add(5 * time.Second)
	for epoch, _, _ := ReadKeyFile(daemonKey); epoch < 2; epoch, _, _ = ReadKeyFile(daemonKey) {
		if time.Now().After(deadline) {
			t.Fatalf("key file at epoch %d 5s after epoch 1 began, want 2: its timer was never waited on", epoch)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, readRecords(t, path), EndpointJoin, EndpointJoin, EpochEnd, EndpointJoin, EpochEnd)
	if _, err := Verify([]string{path}, VerifyOptions{Key: initial}); err != nil {
		t.Fatal(err)
	}
}

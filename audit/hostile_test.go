package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// No reader of the log allocates in proportion to a hostile length. Each
// test builds a huge input without holding it (a generating io.Reader, or a
// sparse file) and bounds what the reader allocates in total, which bounds
// its peak. Nothing is timed.

// endless yields n bytes of 'a', with a newline every lineLen bytes
// (lineLen 0: none), generated as read; read counts what was taken.
type endless struct {
	n, lineLen, read int64
}

func (e *endless) Read(p []byte) (int, error) {
	if e.read >= e.n {
		return 0, io.EOF
	}
	k := int64(len(p))
	if k > e.n-e.read {
		k = e.n - e.read
	}
	for i := int64(0); i < k; i++ {
		p[i] = 'a'
		if e.lineLen > 0 && (e.read+i+1)%e.lineLen == 0 {
			p[i] = '\n'
		}
	}
	e.read += k
	return int(k), nil
}

// sparse makes a file of size bytes of zeros, with a newline every lineLen
// bytes (0: none), after head, without writing the zeros.
func sparse(t *testing.T, head []byte, size, lineLen int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(head); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(head)) + size); err != nil {
		t.Fatal(err)
	}
	for off := lineLen; lineLen > 0 && off <= size; off += lineLen {
		if _, err := f.WriteAt([]byte{'\n'}, int64(len(head))+off-1); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestEachLineStopsAtALongLine(t *testing.T) {
	r := &endless{n: 100 << 20}
	var err error
	n := allocated(func() {
		err = eachLine(r, func([]byte, bool) error { return nil })
	})
	if !errors.Is(err, errLongLine) {
		t.Fatalf("a 100 MB line: %v, want %v", err, errLongLine)
	}
	if r.read > maxLine+2<<20 || n > 6*maxLine {
		t.Errorf("a 100 MB line: read %d bytes and allocated %d, want at most about %d", r.read, n, maxLine)
	}
}

func TestVerifyAndShowStopAtALongLine(t *testing.T) {
	path := sparse(t, seedLogT(t), 100<<20, 0)
	var err error
	n := allocated(func() { _, err = Verify([]string{path}, VerifyOptions{}) })
	if want := path + ": modified: " + longLine; err == nil || err.Error() != want {
		t.Errorf("verify of a 100 MB last line: %v, want %s", err, want)
	}
	if n > 6*maxLine {
		t.Errorf("verify of a 100 MB line allocated %d bytes, want at most about %d", n, maxLine)
	}
	n = allocated(func() { err = Query([]string{path}, Filter{}, func(*Entry, []byte) error { return nil }) })
	if !errors.Is(err, errLongLine) || n > 6*maxLine {
		t.Errorf("show of a 100 MB line: %v, %d bytes allocated; want %v and at most about %d", err, n, errLongLine, maxLine)
	}
}

// Many long lines: what is read ahead of the reader is bounded in bytes,
// not only in lines (4096 lines of 1 MiB are 4 GiB).
func TestReadAheadIsBoundedInBytes(t *testing.T) {
	path := sparse(t, nil, 1<<30, 1<<20) // 1024 lines of zeros, 1 MiB each
	var err error
	n := allocated(func() { _, err = Verify([]string{path}, VerifyOptions{}) })
	var p *Problem
	if !errors.As(err, &p) || p.Kind != NotJSON || p.Line != 1 {
		t.Fatalf("verify: %v, want line 1 not JSON", err)
	}
	bound := uint64(runtime.GOMAXPROCS(0)+4) * 2 * batchBytes
	if n > bound {
		t.Errorf("verify of 1 GiB in 1 MiB lines allocated %d bytes before reporting line 1, want under %d", n, bound)
	}
}

// Reopening a log whose last line is 100 MB long reads a bounded window of
// it, whether or not it can then continue the chain.
func TestReopenAfterAHugeLastLineIsBounded(t *testing.T) {
	head := seedLogT(t)
	path := sparse(t, head, 100<<20, 0)
	n := allocated(func() {
		l, err := OpenWith(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		l.Append(Record{Time: fuzzTime, Event: EndpointJoin, Outcome: OK})
		l.Close()
	})
	if n > 32<<20 {
		t.Errorf("reopening after a 100 MB last line allocated %d bytes, want under 32 MiB", n)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(head))
	if _, err := io.ReadFull(f, got); err != nil || !bytes.Equal(got, head) {
		t.Errorf("the complete records before the huge line changed: %v", err)
	}
}

// show --follow skips a line too long to be a record, and goes on with the
// next, without holding the long line.
func TestFollowSkipsAHugeLine(t *testing.T) {
	path := sparse(t, seedLogT(t), 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen atomic.Value
	seen.Store("")
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, path, Filter{}, func(e *Entry, _ []byte) error { seen.Store(e.EndpointID); return nil })
	}()
	appendLine := func(b []byte) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(id string) {
		for deadline := time.Now().Add(30 * time.Second); seen.Load() != id; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("follow never showed %s", id)
			}
		}
	}
	// Follow starts at the end: append probes until it shows one.
	for deadline := time.Now().Add(10 * time.Second); seen.Load() != "probe"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("follow never started")
		}
		appendLine([]byte(`{"event":"endpoint.join","endpoint_id":"probe"}` + "\n"))
	}
	n := allocated(func() {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, st.Size()+100<<20); err != nil { // 100 MB of zeros, no newline
			t.Fatal(err)
		}
		appendLine([]byte("\n" + `{"event":"endpoint.join","endpoint_id":"after"}` + "\n"))
		waitFor("after")
	})
	if n > 6*maxLine {
		t.Errorf("following past a 100 MB line allocated %d bytes, want at most about %d", n, maxLine)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// seedLogT is seedLog for a test.
func seedLogT(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	for _, id := range []string{"ep1", "ep2", "ep3"} {
		if err := l.Append(Record{Time: fuzzTime, Event: EndpointJoin, Outcome: OK, NetworkID: "n", EndpointID: id}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Reopening a sealed log whose last line claims an epoch far ahead (the
// daemon does not check seals at open) fails naming it, instead of
// deriving keys for hours while every call waits.
func TestReopenRefusesAnEpochFarAhead(t *testing.T) {
	_, daemonKey := newKey(t)
	path, _ := writeLog(t, 3, 0, daemonKey)
	recs := readRecords(t, path)
	last := recs[len(recs)-1]
	far := uint64(1) << 62
	forged := Record{Time: fuzzTime, Seq: last.Seq + 1, Event: EpochEnd, Outcome: OK, Epoch: last.Epoch, NextEpoch: &far, Prev: last.Hash}
	line, err := encode(&forged, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(append(line, '\n'))
	f.Close()

	l, err := OpenWith(path, Options{SealKey: daemonKey})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = l.Append(Record{Time: fuzzTime, Event: EndpointJoin, Outcome: OK})
	if err == nil || !strings.Contains(err.Error(), "claims epoch 4611686018427387904, 4611686018427387903 key steps past the key file's epoch 1") {
		t.Fatalf("append after a forged far epoch: %v, want a refusal naming the key steps", err)
	}
}

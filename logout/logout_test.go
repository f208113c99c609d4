package logout

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// stuck is an output that blocks every write until released, as a pipe
// whose reader never reads does once its buffer is full.
type stuck struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (s *stuck) Write(p []byte) (int, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *stuck) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestWriteNeverBlocksAndDropsAreReported(t *testing.T) {
	out := &stuck{release: make(chan struct{})}
	w := New(out, 4096)
	const lines = 10000
	wrote := make(chan struct{})
	go func() {
		for i := range lines {
			line := fmt.Sprintf("line %05d\n", i)
			if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
				t.Errorf("Write = %d, %v; want %d, nil", n, err, len(line))
			}
		}
		close(wrote)
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a stuck output")
	}
	if w.Dropped() == 0 {
		t.Fatal("no line dropped, though the output took none and the queue holds 4096 bytes")
	}

	close(out.release) // the output drains again
	if !w.Close(10 * time.Second) {
		t.Fatal("queued lines not written within 10s of the output draining")
	}
	got := out.String()
	written := strings.Count(got, "line ")
	report := got[strings.LastIndex(strings.TrimSuffix(got, "\n"), "\n")+1:]
	want := fmt.Sprintf("log output was not being read: %d log lines dropped", lines-written)
	if !strings.Contains(report, want) || !strings.HasSuffix(report, fmt.Sprintf("dropped=%d\n", lines-written)) {
		t.Errorf("last line %q; want one reporting %q", report, want)
	}
	if strings.Count(got, "dropped=") != 1 {
		t.Errorf("want exactly one drop report, got:\n%s", got)
	}
	if w.Dropped() != 0 {
		t.Errorf("Dropped() = %d after the report; want 0", w.Dropped())
	}
}

func TestLinesArriveInOrderWhenTheOutputKeepsUp(t *testing.T) {
	var buf bytes.Buffer
	w := New(&buf, DefaultSize)
	var want strings.Builder
	for i := range 100 {
		line := fmt.Sprintf("line %d\n", i)
		w.Write([]byte(line))
		want.WriteString(line)
	}
	if !w.Close(5 * time.Second) {
		t.Fatal("not drained")
	}
	if buf.String() != want.String() {
		t.Errorf("output:\n%s\nwant:\n%s", buf.String(), want.String())
	}
}

func TestWriteKeepsNoReferenceToTheCallersBuffer(t *testing.T) {
	out := &stuck{release: make(chan struct{})}
	w := New(out, DefaultSize)
	p := []byte("first\n")
	w.Write(p)
	copy(p, "XXXXX\n") // logrus reuses its buffer
	close(out.release)
	w.Close(5 * time.Second)
	if got := out.String(); got != "first\n" {
		t.Errorf("output %q; want %q", got, "first\n")
	}
}

func TestDropReportedWhileIdle(t *testing.T) {
	out := &stuck{release: make(chan struct{})}
	close(out.release)
	w := New(out, 8)
	w.Write([]byte("0123456789\n")) // longer than the whole queue: dropped
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "1 log lines dropped") {
		if time.Now().After(deadline) {
			t.Fatalf("no drop report while idle; output %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.Close(time.Second)
}

// counter is an Observer that adds up the lines lost.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) LogLinesDropped(n int) {
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestObserverCountsLinesAPipeNobodyReadsLost: stdout is a real pipe whose
// reader never reads, as a managed plugin's is when dockerd falls behind.
// Once the pipe's buffer and the queue are full, every line is lost, and the
// Observer hears of each, as the report line does once the pipe drains.
func TestObserverCountsLinesAPipeNobodyReadsLost(t *testing.T) {
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := &counter{}
	w := NewObserved(pw, 4096, c)
	const lines = 20000 // 300 KB: more than a pipe's 64 KiB and the queue
	line := []byte("level=info msg=\"a line of fifteen\"\n")
	for range lines {
		w.Write(line)
	}
	if c.get() == 0 {
		t.Fatal("Observer heard of no lost line, though nobody read the pipe")
	}
	// The pipe drains: the lines still queued and the report arrive.
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); got <- b }()
	if !w.Close(10 * time.Second) {
		t.Fatal("not drained within 10s of the pipe being read")
	}
	pw.Close()
	out := string(<-got)
	written := strings.Count(out, "a line of fifteen")
	if c.get() != lines-written {
		t.Errorf("Observer heard of %d lost lines; %d of %d reached the pipe, so %d were lost", c.get(), written, lines, lines-written)
	}
	// The reports (one each time the queue ran empty) add up to the same.
	reported := 0
	for _, l := range strings.Split(out, "\n") {
		var n int
		if i := strings.Index(l, " dropped="); i >= 0 {
			fmt.Sscan(l[i+len(" dropped="):], &n)
		}
		reported += n
	}
	if reported != lines-written {
		t.Errorf("the reports add up to %d lost lines; want %d", reported, lines-written)
	}
}

// TestObserverCountsLinesTheOutputRefused: the pipe's reader is gone, so
// every write fails (EPIPE); each line is lost and counted, not retried.
func TestObserverCountsLinesTheOutputRefused(t *testing.T) {
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer pw.Close()
	c := &counter{}
	w := NewObserved(pw, DefaultSize, c)
	for range 5 {
		w.Write([]byte("lost\n"))
	}
	if !w.Close(5 * time.Second) {
		t.Fatal("not drained")
	}
	if c.get() != 5 {
		t.Errorf("Observer heard of %d lost lines; want 5, each write failing with EPIPE", c.get())
	}
}

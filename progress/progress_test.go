package progress

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock that the test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLine(t *testing.T) {
	for _, tc := range []struct {
		records, bytes, total int64
		elapsed               time.Duration
		want                  string
	}{
		{412_345, 123_456_789, 456_700_000, 2 * time.Second,
			"412,345 records, 123.5/456.7 MB (27%), 206,172 records/s, 61.7 MB/s"},
		{1_000_002, 869_000_000, 869_000_000, 2400 * time.Millisecond,
			"1,000,002 records, 869.0/869.0 MB (100%), 416,667 records/s, 362.1 MB/s"},
		{999, 500_000, -1, time.Second, // stdin: no total
			"999 records, 0.5 MB, 999 records/s, 0.5 MB/s"},
		{0, 0, 0, 0, "0 records, 0.0/0.0 MB (100%), 0 records/s, 0.0 MB/s"},
	} {
		if got := Line(tc.records, tc.bytes, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("Line(%d, %d, %d, %s)\n got %q\nwant %q", tc.records, tc.bytes, tc.total, tc.elapsed, got, tc.want)
		}
	}
}

// A run shorter than Delay draws nothing; after it the line is drawn at
// most every Every, each redraw covers the last, and Done blanks it.
func TestMeterDrawsAfterDelayAndClears(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	var term bytes.Buffer
	m := New(&term, 10_000_000, Options{Now: c.now})

	c.t = c.t.Add(900 * time.Millisecond)
	m.Add(4096, 1_000_000)
	if term.Len() != 0 {
		t.Fatalf("drew %q before a second had passed", term.String())
	}
	c.t = c.t.Add(100 * time.Millisecond) // 1 s
	m.Add(4096, 1_000_000)
	first := "\r8,192 records, 2.0/10.0 MB (20%), 8,192 records/s, 2.0 MB/s"
	if term.String() != first {
		t.Fatalf("first line\n got %q\nwant %q", term.String(), first)
	}
	c.t = c.t.Add(100 * time.Millisecond) // too soon to redraw
	m.Add(4096, 1_000_000)
	if term.String() != first {
		t.Fatalf("redrew within 250 ms: %q", term.String())
	}
	c.t = c.t.Add(150 * time.Millisecond) // 1.25 s: 250 ms after the first
	m.Add(4096, 8_000_000)
	second := "\r16,384 records, 11.0/10.0 MB (100%), 13,107 records/s, 8.8 MB/s"
	if term.String() != first+second {
		t.Fatalf("second line\n got %q\nwant %q", term.String()[len(first):], second)
	}
	term.Reset()
	m.Done()
	if want := "\r" + strings.Repeat(" ", len(second)-1) + "\r"; term.String() != want {
		t.Fatalf("Done wrote %q, want %q", term.String(), want)
	}
	term.Reset()
	m.Done()
	if term.Len() != 0 {
		t.Fatalf("a second Done wrote %q", term.String())
	}
}

// A shorter line after a longer one blanks what the longer left; a line
// wider than the terminal is cut, since a wrapped line cannot be redrawn.
func TestMeterPadsAndCuts(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	var term bytes.Buffer
	m := New(&term, -1, Options{Now: c.now, Delay: -1, Every: -1, Width: 20})
	c.t = c.t.Add(time.Second)
	m.Add(1, 1)
	if want := "\r1 records, 0.0 MB, "; term.String() != want {
		t.Fatalf("cut line\n got %q\nwant %q", term.String(), want)
	}
	m.shown = 60 // as if a longer line were shown
	term.Reset()
	m.Add(0, 0)
	if got := term.String(); !strings.HasSuffix(got, "MB, "+strings.Repeat(" ", 60-19)) || len(got) != 61 {
		t.Fatalf("redraw over a 60-byte line: %q (%d bytes)", got, len(got))
	}
}

// ClearBefore blanks the line before output to the same terminal, and
// passes the output through byte for byte.
func TestClearBefore(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	var term bytes.Buffer
	m := New(&term, -1, Options{Now: c.now, Delay: -1, Every: -1})
	c.t = c.t.Add(time.Second)
	m.Add(1, 1)
	line := term.String()
	w := m.ClearBefore(&term)
	w.Write([]byte("row\n"))
	want := line + "\r" + strings.Repeat(" ", len(line)-1) + "\r" + "row\n"
	if term.String() != want {
		t.Fatalf("got %q\nwant %q", term.String(), want)
	}
	c.t = c.t.Add(time.Second)
	w.Write([]byte("half a r"))
	term.Reset()
	m.Add(1, 1)
	if term.Len() != 0 {
		t.Fatalf("drew %q over output that ended mid-line", term.String())
	}
	w.Write([]byte("ow\n"))
	c.t = c.t.Add(time.Second)
	m.Add(1, 1)
	if want := "ow\n\r3 records"; !strings.HasPrefix(term.String(), want) {
		t.Fatalf("after the row ended: %q, want it to start %q", term.String(), want)
	}
}

// A nil Meter (progress off) writes nothing and hands writers back as
// they are.
func TestNilMeter(t *testing.T) {
	var m *Meter
	m.Add(1, 1)
	m.Clear()
	m.Done()
	var out bytes.Buffer
	if m.ClearBefore(&out) != &out {
		t.Fatal("a nil Meter wrapped the writer")
	}
}

// A pipe and a regular file are not terminals.
func TestTerminalRefusesPipeAndFile(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, ok := Terminal(w); ok {
		t.Error("a pipe was taken for a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := Terminal(f); ok {
		t.Error("a file was taken for a terminal")
	}
	if _, ok := Terminal(&bytes.Buffer{}); ok {
		t.Error("a buffer was taken for a terminal")
	}
}

// Done may come from a signal handler while the reading goroutine adds:
// once it returns, the line is blank and nothing is drawn again.
func TestDoneFromAnotherGoroutineEndsDrawing(t *testing.T) {
	term := &lockedBuffer{}
	m := New(term, -1, Options{Delay: -1, Every: -1})
	adding := make(chan struct{})
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := 0; ; i++ {
			m.Add(1, 100)
			if i == 10 {
				close(adding)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	<-adding
	m.Done()
	screen := term.String()
	if !strings.HasSuffix(screen, " \r") {
		t.Errorf("Done left the line on screen: %q", screen[max(len(screen)-80, 0):])
	}
	for range 1000 {
		m.Add(1, 100)
	}
	close(stop)
	<-finished
	if got := term.String(); got != screen {
		t.Errorf("drew after Done: %q", got[len(screen):])
	}
}

// lockedBuffer is a terminal two goroutines may write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

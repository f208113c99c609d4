// Package progress draws one line of progress on a terminal while a long
// read runs: records and bytes done, and the rate. It draws nothing on a
// pipe or a file, nothing in the first second (a short run stays silent),
// and clears its line at the end, so that what a command prints is the same
// with and without it.
//
// It is hand-written, not a progress-bar library: the line counts two
// things at once (records and bytes), must wait a second before it shows,
// and is redrawn from the reading goroutine with no ticker of its own;
// what the libraries add (bars, colours, spinners, their own terminal
// detection) is what this leaves out.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Defaults: the first line after Delay, then a redraw at most every Every.
const (
	Delay = time.Second
	Every = 250 * time.Millisecond
)

// Terminal reports whether w is a terminal that can redraw a line in
// place, and its width in columns (0 if unknown). TERM=dumb cannot.
func Terminal(w io.Writer) (width int, ok bool) {
	f, isFile := w.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) || os.Getenv("TERM") == "dumb" {
		return 0, false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		width = 0
	}
	return width, true
}

// Options tune a Meter; the zero value is the defaults and the real clock.
type Options struct {
	Width        int              // terminal columns; 0: unknown, lines are not cut
	Delay, Every time.Duration    // 0: the defaults; <0: none
	Now          func() time.Time // nil: time.Now
}

// A Meter counts records and bytes and redraws a line on a terminal. It is
// fed from one goroutine; Done may come from another (a signal handler
// clearing the line before the process exits). A nil Meter does nothing.
type Meter struct {
	w              io.Writer
	o              Options
	total          int64 // bytes the run reads; <0: unknown
	start          time.Time
	mu             sync.Mutex // guards what follows, and writes of the line
	drawn          time.Time
	records, bytes int64
	shown          int  // bytes of the line on screen; 0: none
	midLine        bool // output through ClearBefore ended mid-line: do not draw over it
	done           bool // Done was called: never draw again
}

// New starts a Meter that draws on w, a terminal (see Terminal), for a run
// that reads total bytes (<0: unknown, as from a pipe).
func New(w io.Writer, total int64, o Options) *Meter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Delay == 0 {
		o.Delay = Delay
	}
	if o.Every == 0 {
		o.Every = Every
	}
	return &Meter{w: w, o: o, total: total, start: o.Now()}
}

// Add counts records and bytes done, and redraws the line once Delay has
// passed since New and Every since the last redraw.
func (m *Meter) Add(records int, bytes int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records += int64(records)
	m.bytes += bytes
	now := m.o.Now()
	if m.done || m.midLine || now.Sub(m.start) < m.o.Delay || !m.drawn.IsZero() && now.Sub(m.drawn) < m.o.Every {
		return
	}
	m.drawn = now
	s := Line(m.records, m.bytes, m.total, now.Sub(m.start))
	if m.o.Width > 1 && len(s) > m.o.Width-1 {
		s = s[:m.o.Width-1] // a wrapped line cannot be redrawn with \r
	}
	pad := max(m.shown-len(s), 0) // what is left of a longer line before
	fmt.Fprintf(m.w, "\r%s%s", s, strings.Repeat(" ", pad))
	m.shown = len(s) + pad
}

// Clear blanks the line, if one is shown; the next Add draws it again.
func (m *Meter) Clear() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clear()
}

func (m *Meter) clear() {
	if m.shown == 0 {
		return
	}
	fmt.Fprintf(m.w, "\r%s\r", strings.Repeat(" ", m.shown))
	m.shown = 0
}

// Done clears the line for good: the run is over, or interrupted. Safe to
// call from another goroutine than Add's, and more than once.
func (m *Meter) Done() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clear()
	m.done = true
}

// ClearBefore returns w with the line cleared before each write to it: for
// output that goes to the same terminal as the line. While that output
// ends mid-line, the line is not drawn (\r would overwrite the output's
// start). A nil Meter returns w.
func (m *Meter) ClearBefore(w io.Writer) io.Writer {
	if m == nil {
		return w
	}
	return clearing{m: m, w: w}
}

type clearing struct {
	m *Meter
	w io.Writer
}

func (c clearing) Write(p []byte) (int, error) {
	c.m.mu.Lock()
	c.m.clear()
	if len(p) > 0 {
		c.m.midLine = p[len(p)-1] != '\n'
	}
	c.m.mu.Unlock() // a stdout that blocks must not hold up Done
	return c.w.Write(p)
}

// Line is what a Meter shows after elapsed:
//
//	412,345 records, 123.4/456.7 MB (27%), 205,000 records/s, 61.2 MB/s
//
// MB are 10^6 bytes. Without a total (<0), the bytes are shown alone.
func Line(records, bytes, total int64, elapsed time.Duration) string {
	secs := elapsed.Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	done := fmt.Sprintf("%.1f MB", float64(bytes)/1e6)
	if total >= 0 {
		pct := int64(100)
		if total > 0 {
			pct = min(bytes*100/total, 100)
		}
		done = fmt.Sprintf("%.1f/%.1f MB (%d%%)", float64(bytes)/1e6, float64(total)/1e6, pct)
	}
	return fmt.Sprintf("%s records, %s, %s records/s, %.1f MB/s",
		thousands(records), done, thousands(int64(float64(records)/secs)), float64(bytes)/1e6/secs)
}

// thousands writes n with a comma every three digits.
func thousands(n int64) string {
	if n < 0 {
		return "-" + thousands(-n)
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Package logout is the daemon's log output: a writer whose Write never
// blocks.
//
// A driver call must wait on nothing but the audit log's own write and
// fsync. Logging writes to stdout, which is a pipe: dockerd's FIFO for a
// managed plugin, or whatever a service manager or a shell attached. When
// nobody drains it, a plain write blocks, and logrus holds its mutex across
// the write, so every call that logs would block with it, and Docker's plugin
// client has no timeout. Writer queues lines in a bounded buffer that one
// goroutine drains; when the buffer is full, lines are dropped and counted,
// and once the output takes lines again one line says how many were lost.
// A line the output refuses (a write error, such as EPIPE once its reader
// is gone) is lost and counted the same way. An Observer hears of every
// lost line as it is lost, for the metrics. The audit file, not this log, is
// the record.
package logout

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultSize bounds the bytes queued: a few thousand log lines, or at least
// a dozen audit records mirrored at their largest.
const DefaultSize = 1 << 20

// Observer hears of lines the Writer lost (metrics): n lines dropped from a
// full queue or after Close, or refused by the output. It is called with
// the Writer's lock held or from its drain goroutine, so it must be quick
// and must not write to the Writer.
type Observer interface {
	LogLinesDropped(n int)
}

// Writer is a non-blocking io.Writer in front of a slow or stuck one.
type Writer struct {
	out   io.Writer
	obs   Observer      // nil: none
	size  int           // bound on queued bytes
	lines chan []byte   // queued lines, drained by run
	wake  chan struct{} // tells run that lines were dropped while it waited
	done  chan struct{} // closed when run has returned

	// mu guards the fields below. It is held only for bookkeeping and a
	// channel send that cannot block, never across a write to out.
	mu      sync.Mutex
	queued  int  // bytes in lines
	dropped int  // lines dropped since the last report
	closed  bool // Close was called: lines are dropped
}

// New starts a Writer that writes to out and queues at most size bytes.
func New(out io.Writer, size int) *Writer { return NewObserved(out, size, nil) }

// NewObserved is New, telling obs (if not nil) of every line lost.
func NewObserved(out io.Writer, size int, obs Observer) *Writer {
	w := &Writer{
		out:   out,
		obs:   obs,
		size:  size,
		lines: make(chan []byte, max(size/64, 16)), // room for short lines; size bounds the bytes
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	go w.run()
	return w
}

// Write queues a copy of p, or drops it if the queue is full. It never
// blocks on out and never fails: a dropped line is counted, not an error
// for the caller to handle.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.queued+len(p) > w.size {
		w.drop()
		return len(p), nil
	}
	select {
	case w.lines <- append([]byte(nil), p...):
		w.queued += len(p)
	default:
		w.drop()
	}
	return len(p), nil
}

// drop counts a lost line; w.mu is held.
func (w *Writer) drop() {
	w.dropped++
	if w.obs != nil {
		w.obs.LogLinesDropped(1)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Dropped is how many lines were dropped and not yet reported.
func (w *Writer) Dropped() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// run writes queued lines to out, and reports drops each time the queue
// runs empty.
func (w *Writer) run() {
	defer close(w.done)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				w.report()
				return
			}
			_, err := w.out.Write(line)
			w.mu.Lock()
			w.queued -= len(line)
			if err != nil {
				// Nowhere to say why: the output is where it would go.
				// Counted as a drop, reported once the output takes a
				// line again.
				w.drop()
			}
			empty := w.queued == 0
			w.mu.Unlock()
			if empty {
				w.report()
			}
		case <-w.wake:
			if len(w.lines) == 0 {
				w.report()
			}
		}
	}
}

// report writes one line with the count of lines dropped since the last one.
func (w *Writer) report() {
	w.mu.Lock()
	n := w.dropped
	w.dropped = 0
	w.mu.Unlock()
	if n > 0 {
		fmt.Fprintf(w.out, "time=%q level=warning msg=\"log output was not being read: %d log lines dropped; the audit log has every record\" dropped=%d\n",
			time.Now().Format(time.RFC3339Nano), n, n)
	}
}

// Close stops taking lines and waits up to timeout for the queued ones and
// the drop report to be written. It reports whether they were.
func (w *Writer) Close(timeout time.Duration) bool {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.lines)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

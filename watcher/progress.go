package watcher

import (
	"sync"
	"time"
)

// progress says where to replay Docker's events from after a restart: the
// time of the newest event such that it and every event read before it are
// done (their records durable). Events are handled concurrently and finish
// out of order; one whose record the audit log cannot take yet holds since
// back, so that a restart replays it rather than losing it.
type progress struct {
	// mu guards marks and since.
	mu    sync.Mutex
	marks []*mark // events read and not yet folded into since, in stream order
	since time.Time
}

type mark struct {
	at   time.Time
	done bool
}

func newProgress(since time.Time) *progress { return &progress{since: since} }

// reset forgets the events of a subscription that ended: those not done
// are replayed by the next.
func (p *progress) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marks = nil
}

// read notes an event as read and not done.
func (p *progress) read(at time.Time) *mark {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := &mark{at: at}
	p.marks = append(p.marks, m)
	return m
}

// done notes m's records durable, and advances since over every event done
// in stream order.
func (p *progress) done(m *mark) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.done = true
	n := 0
	for n < len(p.marks) && p.marks[n].done {
		if p.marks[n].at.After(p.since) {
			p.since = p.marks[n].at
		}
		n++
	}
	p.marks = p.marks[n:]
}

// Since is the time to replay from.
func (p *progress) Since() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.since
}

// pending is how many events are read and not folded into since.
func (p *progress) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.marks)
}

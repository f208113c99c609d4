// Package sink forwards audit records to syslog. The audit file is the source
// of truth; this copy is best effort, so a collector that is down or slow
// never blocks or fails the caller: lines wait in a bounded queue, and when it
// is full they are dropped and counted.
package sink

import (
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

const (
	queueSize    = 4096                   // lines waiting for the sender
	minBackoff   = 100 * time.Millisecond // first wait after a failed dial or write
	maxBackoff   = 10 * time.Second
	dialTimeout  = 5 * time.Second
	writeTimeout = 10 * time.Second // a collector stuck longer than this is reconnected
	warnEvery    = 10 * time.Second // at most one "dropping lines" warning per interval
)

// Observer hears of lines the sink lost (metrics): n lines dropped from a
// full queue, refused twice by the collector, still queued when Close gave
// up, or sent after Close. It is called from Send's caller and from the
// sender goroutine, so it must be quick and safe for concurrent use.
type Observer interface {
	SyslogDropped(n int)
}

// Syslog sends audit lines to one syslog collector from a background
// goroutine. Its methods are safe for concurrent use.
type Syslog struct {
	obs              Observer // nil: none
	network, address string
	stream           bool // octet-counted framing (tcp, unix)
	hostname         string
	pid              int
	log              *logrus.Entry

	queue    chan []byte // formatted, framed messages
	dropped  atomic.Uint64
	lastWarn atomic.Int64 // UnixNano of the last "dropping lines" warning
	closed   atomic.Bool  // set by Close; later lines are dropped

	closing   chan struct{}      // closed by Close: send what is queued, then stop
	abort     context.CancelFunc // cancels dials, writes and waits at once
	done      chan struct{}      // closed when the sender has stopped
	closeOnce sync.Once
}

// NewSyslog parses addr and starts the sender. It does not dial: a collector
// that is down at start is retried in the background. It returns an error
// only for an addr it cannot parse, naming what is accepted.
func NewSyslog(addr, hostname string, log *logrus.Entry) (*Syslog, error) {
	return NewSyslogObserved(addr, hostname, log, nil)
}

// NewSyslogObserved is NewSyslog, telling obs (if not nil) of every line
// lost.
func NewSyslogObserved(addr, hostname string, log *logrus.Entry, obs Observer) (*Syslog, error) {
	network, address, stream, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Syslog{
		obs:      obs,
		network:  network,
		address:  address,
		stream:   stream,
		hostname: hostname,
		pid:      os.Getpid(),
		log:      log.WithField("syslog", addr),
		queue:    make(chan []byte, queueSize),
		closing:  make(chan struct{}),
		abort:    cancel,
		done:     make(chan struct{}),
	}
	go s.run(ctx)
	return s, nil
}

// Send queues one record. event is e.g. "endpoint.join", refused is true
// when the record's outcome is "refused"; chain is the record's seq, epoch,
// prev and hash, sent in STRUCTURED-DATA; line is the JSON record (no
// trailing newline). It never blocks: when the queue is full, or after
// Close, the line is dropped and counted.
func (s *Syslog) Send(event string, refused bool, chain Chain, line []byte) {
	if s.closed.Load() {
		s.lose(1)
		return
	}
	msg := format(time.Now(), s.hostname, s.pid, event, refused, chain, line, s.stream)
	select {
	case s.queue <- msg:
	default:
		s.drop()
	}
}

// drop counts a lost line and warns, at most once per warnEvery so that a
// long outage does not flood the daemon's own log.
func (s *Syslog) drop() {
	n := s.lose(1)
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if now-last < int64(warnEvery) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.log.WithField("dropped", n).Warn("syslog sink is behind, dropping audit lines (the audit file still has them)")
}

// lose counts n lost lines, tells the observer, and returns the count so far.
func (s *Syslog) lose(n uint64) uint64 {
	total := s.dropped.Add(n)
	if s.obs != nil {
		s.obs.SyslogDropped(int(n))
	}
	return total
}

// Dropped is how many lines were dropped so far: queue full, refused twice
// by the collector, still queued when Close gave up, or sent after Close.
func (s *Syslog) Dropped() uint64 { return s.dropped.Load() }

// Close sends what is queued, waiting at most timeout, then stops. Lines
// still queued after timeout are lost. Calling it again does nothing.
func (s *Syslog) Close(timeout time.Duration) {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
		}
		s.abort()
		<-s.done // prompt: abort unblocks any dial, write or wait
		var lost uint64
		for len(s.queue) > 0 {
			<-s.queue
			lost++
		}
		if lost > 0 {
			s.lose(lost)
			s.log.WithField("lost", lost).Warn("syslog sink closed before sending every queued audit line")
		}
	})
}

// run is the sender. It owns the connection: only this goroutine dials,
// writes and closes it.
func (s *Syslog) run(ctx context.Context) {
	defer close(s.done)
	var (
		conn    net.Conn
		unwatch func() bool // stops the abort watch on conn
		msg     []byte      // next message to write; nil when none
		fails   int         // failed writes of msg, to give up on one the collector keeps refusing
		backoff = minBackoff
		down    bool // a warning went out for the current outage
	)
	hangUp := func() {
		unwatch()
		conn.Close()
		conn = nil
	}
	defer func() {
		if conn != nil {
			hangUp()
		}
		if msg != nil { // aborted by Close while msg was in hand
			s.lose(1)
		}
	}()
	// backOff reports the failure, waits, and doubles the next wait; false
	// when Close aborted the wait.
	backOff := func(what string, err error) bool {
		s.outage(&down, what, err)
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, maxBackoff)
		return true
	}
	for {
		if msg == nil {
			select {
			case msg = <-s.queue:
			case <-s.closing:
				select {
				case msg = <-s.queue:
				default:
					return // everything queued was sent
				}
			case <-ctx.Done():
				return
			}
			fails = 0
		}
		if conn == nil {
			c, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, s.network, s.address)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if !backOff("cannot reach syslog collector, retrying", err) {
					return
				}
				continue
			}
			conn = c
			// On abort, a deadline in the past makes a blocked write return.
			unwatch = context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
			if down {
				s.log.Info("syslog collector reachable again")
				down = false
			}
		}
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := conn.Write(msg); err != nil {
			hangUp()
			if ctx.Err() != nil {
				return
			}
			// Retry msg once on a new connection; a message refused twice
			// (e.g. too large for a datagram) would otherwise stall the queue.
			if fails++; fails >= 2 {
				s.lose(1)
				msg = nil
			}
			if !backOff("syslog write failed, reconnecting", err) {
				return
			}
			continue
		}
		msg = nil
		backoff = minBackoff
	}
}

// outage warns once per outage and keeps later failures at debug, so a
// collector that stays down does not flood the daemon's own log.
func (s *Syslog) outage(down *bool, what string, err error) {
	l := s.log.WithError(err)
	if *down {
		l.Debug(what)
		return
	}
	*down = true
	l.Warn(what)
}

// sleep waits d, or returns false as soon as ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

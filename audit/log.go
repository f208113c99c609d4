package audit

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hostpass/hostpass/errclass"
	"github.com/sirupsen/logrus"
)

const (
	// mirrorQueue bounds the records waiting for Options.Mirror, and
	// mirrorDrain how long Close waits for them.
	mirrorQueue = 4096
	mirrorDrain = 2 * time.Second
	// handedOff bounds the records handed to run that it has not taken
	// yet; past it callers wait to hand theirs. Each takes some 700 bytes.
	handedOff = 64
)

// ErrUnavailable marks every error that means "the record is not durable".
// It is in errclass's unavailable class, so a server maps any error wrapping
// it to 503 without knowing this package.
var ErrUnavailable = errclass.Unavailable(errors.New("audit log unavailable"))

var errClosed = fmt.Errorf("%w: the audit log is closed", ErrUnavailable)

// Options are the log's settings; the zero value is a plain chained log
// that never rotates.
type Options struct {
	// MaxSize rotates the current file once it holds this many bytes; 0
	// never rotates by size.
	MaxSize int64
	// SealKey is the daemon's sealing key file. Empty: records are hashed
	// with SHA-256, unsealed.
	SealKey string
	// SignKey is the daemon's signing key file (NewSignKeyFile): the log
	// keeps a Merkle tree of its records and writes audit.checkpoint
	// records signed by the epoch's key (checkpointing.go). It replaces
	// SealKey; a log takes one or the other.
	SignKey string
	// A signed log writes a checkpoint once CheckpointRecords records are
	// not covered by one (default 1000), CheckpointInterval after the
	// first of them (default 1m), Heartbeat after the last checkpoint when
	// idle (default 5m), at Start and at a clean stop.
	CheckpointRecords  int
	CheckpointInterval time.Duration
	Heartbeat          time.Duration
	// A sealed or signed log's key evolves after EpochRecords records, or
	// EpochInterval after the epoch's first record, whichever comes first.
	EpochRecords  int
	EpochInterval time.Duration
	// Host and Driver fill those fields of the records the log writes itself.
	Host, Driver string
	// Observer, if not nil, hears of each fsync, each failed write and
	// each record the mirror drops (metrics).
	Observer Observer
	// MaxKept bounds the records AppendOrKeep holds in memory while the log
	// is unwritable (default 10,000). Past it they are counted, and an
	// audit.lost record gives their number and time range once the log is
	// writable again.
	MaxKept int
	// MaxKeptBytes bounds the same records by their encoded size (default
	// 16 MiB). Each is cut to MaxRecord before it is kept, so without it
	// MaxKept records could hold MaxKept × 64 KiB (625 MiB).
	MaxKeptBytes int
	// Mirror, if set, receives every record once it is durable, from a
	// goroutine of its own: a slow or blocked mirror (a stdout nobody
	// reads) never holds up a caller. Past mirrorQueue records waiting, it
	// misses records, counted in MirrorDropped.
	Mirror func(rec Record, line []byte)
	// MirrorWants, if set, says which records Mirror is to receive; the
	// others are not queued at all. It runs on the committing goroutine,
	// so it must be cheap: waking the mirror's goroutine for a record it
	// then drops cost a lone caller a fifth of its time over a driver
	// that only fsyncs (issue 11).
	MirrorWants func(rec Record) bool
	// Log reports what the log does on its own (recovery, key evolution,
	// failures). Discarded when nil.
	Log *logrus.Entry
}

// Log is the append-only, hash-chained audit file. Whoever holds mu commits:
// a caller that finds the log idle writes its record itself, and a caller
// that finds a commit under way hands its record to the run goroutine and
// waits; records that arrive while a write is under way share the next
// write and fsync (group commit).
type Log struct {
	path string
	o    Options

	// mu is held by whoever commits (submit, or run): it guards c and
	// closed, and watched.
	mu     sync.Mutex
	closed bool // Close has begun: no caller commits any more
	// watched: the timers run waits on, so that a caller whose commit
	// changes them wakes it to wait on the new ones.
	watched [2]<-chan time.Time

	requests chan request  // records handed to run, buffered
	wake     chan struct{} // cap 1: requests wait, or a caller's commit left run work
	starts   chan chan error
	rotates  chan chan error
	closes   chan chan error
	stopped  chan struct{}
	pending  atomic.Int64 // len(c.kept), for Pending

	mirrorQ       chan *mirrored // nil without a Mirror; pointers, so that its 4,096 slots cost 32 KiB, not a Record each
	mirrorDone    chan struct{}
	mirrorDropped atomic.Uint64

	c committer // guarded by mu
}

type mirrored struct {
	rec  Record
	line []byte
}

type request struct {
	rec  Record
	keep bool // teardown: keep in memory if it cannot be made durable now
	done chan error
}

// Open returns a plain chained log at path with default options. It never
// fails: an unwritable path shows as errors from Append.
func Open(path string, mirror func(line []byte)) *Log {
	o := Options{}
	if mirror != nil {
		o.Mirror = func(_ Record, line []byte) { mirror(line) }
	}
	l, _ := OpenWith(path, o)
	return l
}

// OpenWith returns the log at path. It fails only for a sealing or signing
// key it cannot read, or both given: the file itself is opened at the first write, so that a
// daemon with an unwritable log still serves teardown.
func OpenWith(path string, o Options) (*Log, error) {
	if o.Log == nil {
		discard := logrus.New()
		discard.SetOutput(io.Discard)
		o.Log = logrus.NewEntry(discard)
	}
	if o.EpochRecords <= 0 {
		o.EpochRecords = 1000
	}
	if o.EpochInterval <= 0 {
		o.EpochInterval = time.Minute
	}
	if o.CheckpointRecords <= 0 {
		o.CheckpointRecords = DefaultCheckpointRecords
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.MaxKept <= 0 {
		o.MaxKept = 10000
	}
	if o.MaxKeptBytes <= 0 {
		o.MaxKeptBytes = 16 << 20
	}
	l := &Log{
		path: path, o: o,
		requests: make(chan request, handedOff),
		wake:     make(chan struct{}, 1),
		starts:   make(chan chan error),
		rotates:  make(chan chan error),
		closes:   make(chan chan error),
		stopped:  make(chan struct{}),
	}
	l.c.prev = Genesis
	if o.SealKey != "" && o.SignKey != "" {
		return nil, errclass.InvalidParameter(fmt.Errorf("a sealing key (%s) and a signing key (%s) given: a log is sealed or signed, not both (one epoch clock, one kind of key); signing replaces sealing for new logs, so give the signing key alone, or the sealing key alone to go on with a sealed log", o.SealKey, o.SignKey))
	}
	if o.SignKey != "" {
		key, err := ReadSignKeyFile(o.SignKey)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		l.c.sign = &signing{key: key, last: time.Now()}
		l.c.epoch = key.Epoch()
		l.armCheckpoints()
	}
	if o.SealKey != "" {
		epoch, key, err := ReadKeyFile(o.SealKey)
		if err != nil {
			return nil, fmt.Errorf("sealing key: %w", err)
		}
		l.c.key, l.c.epoch = key, epoch
	}
	if o.Mirror != nil {
		l.mirrorQ, l.mirrorDone = make(chan *mirrored, mirrorQueue), make(chan struct{})
		go func() {
			defer close(l.mirrorDone)
			for m := range l.mirrorQ {
				o.Mirror(m.rec, m.line)
			}
		}()
	}
	go l.run()
	return l, nil
}

// MirrorDropped is how many records the mirror missed because it was behind.
func (l *Log) MirrorDropped() uint64 { return l.mirrorDropped.Load() }

// Path is the log's current file.
func (l *Log) Path() string { return l.path }

// Append makes rec durable and returns nil, or returns an error wrapping
// ErrUnavailable and keeps nothing. Records kept back by AppendOrKeep are
// written first.
func (l *Log) Append(rec Record) error { return l.submit(rec, false) }

// AppendOrKeep makes rec durable, or keeps it in memory and writes it as soon
// as the log is writable again. The error says why it is not durable yet.
func (l *Log) AppendOrKeep(rec Record) error { return l.submit(rec, true) }

// submit commits rec on the caller's goroutine when no commit is under way
// (with the requests waiting, if any), which spares a lone caller two
// hand-offs between goroutines; otherwise it hands rec to run, which
// commits it with the others that arrive meanwhile.
func (l *Log) submit(rec Record, keep bool) error {
	r := request{rec: rec, keep: keep, done: make(chan error, 1)}
	if l.mu.TryLock() {
		if l.closed {
			l.mu.Unlock()
			return errClosed
		}
		l.commit(gather(l.requests, []request{r}))
		l.leaveWork()
		l.mu.Unlock()
		return <-r.done
	}
	select {
	case l.requests <- r:
	case <-l.stopped:
		return errClosed
	}
	l.wakeRun()
	select {
	case err := <-r.done:
		return err
	case <-l.stopped:
		select { // answered before run stopped
		case err := <-r.done:
			return err
		default:
			return errClosed
		}
	}
}

// wakeRun has run look at the log: requests wait, or a timer is to arm.
func (l *Log) wakeRun() {
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is pending already; run looks at everything then
	}
}

// Pending is the number of records waiting in memory for the disk.
func (l *Log) Pending() int { return int(l.pending.Load()) }

// Rotate moves the current file aside (SIGHUP does this); the next record
// starts a new file whose first record chains to the last one here.
func (l *Log) Rotate() error {
	done := make(chan error, 1)
	select {
	case l.rotates <- done:
		return <-done
	case <-l.stopped:
		return errClosed
	}
}

// Close writes what is kept and closes the file. Records it cannot write are
// reported in the error; they are lost with the process.
func (l *Log) Close() error {
	done := make(chan error, 1)
	select {
	case l.closes <- done:
		return <-done
	case <-l.stopped:
		return nil
	}
}

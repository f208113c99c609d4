package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/atomicfile"
)

const (
	// retryInterval is how often records kept in memory are offered to the
	// disk again while the log is unwritable.
	retryInterval = time.Second
	// maxBatch bounds how many records share one write and one fsync.
	maxBatch = 1024
	// mirrorQueue bounds the records waiting for Options.Mirror, and
	// mirrorDrain how long Close waits for them.
	mirrorQueue = 4096
	mirrorDrain = 2 * time.Second
)

// ErrUnavailable marks every error that means "the record is not durable".
var ErrUnavailable = errors.New("audit log unavailable")

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
	// A sealed log's key evolves after EpochRecords records, or
	// EpochInterval after the epoch's first record, whichever comes first.
	EpochRecords  int
	EpochInterval time.Duration
	// Host and Driver fill those fields of the records the log writes itself.
	Host, Driver string
	// Mirror, if set, receives every record once it is durable, from a
	// goroutine of its own: a slow or blocked mirror (a stdout nobody
	// reads) never holds up a caller. Past mirrorQueue records waiting, it
	// misses records, counted in MirrorDropped.
	Mirror func(rec Record, line []byte)
	// Log reports what the log does on its own (recovery, key evolution,
	// failures). Discarded when nil.
	Log *logrus.Entry
}

// Log is the append-only, hash-chained audit file. One goroutine (run) owns
// the file: callers hand it records and wait, and records that arrive while
// a write is under way share the next write and fsync (group commit).
type Log struct {
	path string
	o    Options

	requests chan request
	rotates  chan chan error
	closes   chan chan error
	stopped  chan struct{}
	kept     atomic.Int64 // len(c.kept), for Pending

	mirrorQ       chan mirrored // nil without a Mirror
	mirrorDone    chan struct{}
	mirrorDropped atomic.Uint64

	c committer // owned by run
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

// committer is the state only the run goroutine touches.
type committer struct {
	f            *os.File
	size         int64  // bytes of complete, durable records in f
	fileFirstSeq uint64 // seq of f's first record, names f when rotated
	seq          uint64 // last durable seq
	prev         string // hash of the last durable record
	kept         []Record
	torn         *Record   // set aside at open; written before anything else
	views        viewState // the last host.view written (view.go)

	key          []byte // nil: unsealed
	epoch        uint64
	epochRecords int // records sealed in this epoch
	epochTimer   *time.Timer
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

// OpenWith returns the log at path. It fails only for a sealing key it
// cannot read: the file itself is opened at the first write, so that a
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
	l := &Log{
		path: path, o: o,
		requests: make(chan request),
		rotates:  make(chan chan error),
		closes:   make(chan chan error),
		stopped:  make(chan struct{}),
	}
	l.c.prev = Genesis
	if o.SealKey != "" {
		epoch, key, err := ReadKeyFile(o.SealKey)
		if err != nil {
			return nil, fmt.Errorf("sealing key: %w", err)
		}
		l.c.key, l.c.epoch = key, epoch
	}
	if o.Mirror != nil {
		l.mirrorQ, l.mirrorDone = make(chan mirrored, mirrorQueue), make(chan struct{})
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

func (l *Log) submit(rec Record, keep bool) error {
	r := request{rec: rec, keep: keep, done: make(chan error, 1)}
	select {
	case l.requests <- r:
		return <-r.done
	case <-l.stopped:
		return errClosed
	}
}

// Pending is the number of records waiting in memory for the disk.
func (l *Log) Pending() int { return int(l.kept.Load()) }

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

func (l *Log) run() {
	defer close(l.stopped)
	c := &l.c
	var retry <-chan time.Time
	for {
		var batch []request
		var epochEnd <-chan time.Time
		if c.epochTimer != nil {
			epochEnd = c.epochTimer.C
		}
		select {
		case r := <-l.requests:
			batch = append(batch, r)
		drain:
			for len(batch) < maxBatch {
				select {
				case r := <-l.requests:
					batch = append(batch, r)
				default:
					break drain
				}
			}
		case <-retry:
		case <-epochEnd:
			c.epochTimer = nil
			l.evolve()
		case done := <-l.rotates:
			done <- l.rotate()
			continue
		case done := <-l.closes:
			done <- l.shutdown()
			return
		}
		l.commit(batch)
		retry = nil
		if len(c.kept) > 0 {
			retry = time.After(retryInterval)
		}
	}
}

// commit writes the kept records and the batch in one write and one fsync,
// then answers every caller.
func (l *Log) commit(batch []request) {
	c := &l.c
	recs := make([]Record, len(batch))
	for i, r := range batch {
		recs[i] = r.rec
	}
	err := l.flush(recs)
	if err != nil {
		for _, r := range batch {
			if r.keep {
				c.kept = append(c.kept, r.rec)
			}
		}
		l.kept.Store(int64(len(c.kept)))
	}
	for _, r := range batch {
		r.done <- err
	}
	if err != nil {
		return
	}
	if c.key != nil && c.epochRecords >= l.o.EpochRecords {
		l.evolve()
	}
	if l.o.MaxSize > 0 && c.size >= l.o.MaxSize {
		if err := l.rotate(); err != nil {
			l.o.Log.WithError(err).Error("audit log: rotation failed; writing on to the current file")
		}
	}
}

// flush writes the kept records, then more, in one write; on success nothing
// is kept any longer.
func (l *Log) flush(more []Record) error {
	c := &l.c
	recs := append(append([]Record(nil), c.kept...), more...)
	if len(recs) == 0 {
		return nil
	}
	if err := l.write(recs); err != nil {
		return err
	}
	c.kept = nil
	l.kept.Store(0)
	return nil
}

// write numbers, chains and seals recs, writes them in one write and
// fsyncs. On failure the file is cut back to its last durable size and
// closed, so no half-written line stays behind and the next attempt reads
// the file's tail again.
func (l *Log) write(recs []Record) error {
	c := &l.c
	if c.f == nil {
		if err := l.open(); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	if c.torn != nil {
		recs = append([]Record{*c.torn}, recs...)
	}
	recs = c.withViews(recs)
	var buf bytes.Buffer
	lines := make([][]byte, len(recs))
	seq, prev := c.seq, c.prev
	for i := range recs {
		seq++
		recs[i].Seq, recs[i].Prev, recs[i].Schema = seq, prev, Schema
		recs[i].Epoch = nil
		if c.key != nil {
			e := c.epoch
			recs[i].Epoch = &e
		}
		line, err := encodeRecord(&recs[i], c.key)
		if err != nil {
			return fmt.Errorf("%w: encoding record: %v", ErrUnavailable, err)
		}
		prev = recs[i].Hash
		lines[i] = line
		buf.Write(line)
		buf.WriteByte('\n')
	}
	_, err := c.f.Write(buf.Bytes())
	if err == nil {
		err = c.f.Sync()
	}
	if err != nil {
		c.f.Truncate(c.size) // best effort; the reopen checks the tail again
		c.f.Close()
		c.f = nil
		return fmt.Errorf("%w: writing %s: %v", ErrUnavailable, l.path, err)
	}
	if c.size == 0 {
		c.fileFirstSeq = c.seq + 1
	}
	c.size += int64(buf.Len())
	c.seq, c.prev = seq, prev
	c.torn = nil
	if c.key != nil {
		if c.epochRecords == 0 {
			c.epochTimer = time.NewTimer(l.o.EpochInterval)
		}
		c.epochRecords += len(recs)
	}
	if l.mirrorQ != nil {
		for i, line := range lines {
			select {
			case l.mirrorQ <- mirrored{recs[i], line}:
			default:
				if l.mirrorDropped.Add(1)%1000 == 1 {
					l.o.Log.WithField("dropped", l.mirrorDropped.Load()).Warn("audit log: the mirror (daemon log, syslog) is behind and misses records; the file has them all")
				}
			}
		}
	}
	return nil
}

// evolve ends the sealing epoch: an audit.epoch record sealed under the
// current key, then the key steps forward and the old one is wiped from
// memory and from the key file. If the record cannot be written the key
// stays (the next batch or tick tries again): an epoch must not end without
// its record, or a verifier could not tell evolution from truncation.
func (l *Log) evolve() {
	c := &l.c
	next := c.epoch + 1
	marker := l.own(EpochEnd, "")
	marker.NextEpoch = &next
	if err := l.flush([]Record{marker}); err != nil {
		l.o.Log.WithError(err).Error("audit log: cannot end the sealing epoch; the key evolves once the log is writable")
		return
	}
	l.advanceKey(next)
}

// advanceKey steps the key forward to epoch and overwrites the key file.
func (l *Log) advanceKey(epoch uint64) {
	c := &l.c
	for c.epoch < epoch {
		next := NextKey(c.key)
		wipe(c.key)
		c.key = next
		c.epoch++
	}
	c.epochRecords = 0
	if c.epochTimer != nil {
		c.epochTimer.Stop()
		c.epochTimer = nil
	}
	if err := overwriteKeyFile(l.o.SealKey, c.epoch, c.key); err != nil {
		l.o.Log.WithError(err).Error("audit log: cannot overwrite the sealing key file; an older key stays on disk")
	}
	l.o.Log.WithField("epoch", c.epoch).Debug("audit log: sealing key evolved")
}

// own is a record the log writes about itself.
func (l *Log) own(event, detail string) Record {
	return Record{Time: time.Now().UTC(), Event: event, Outcome: OK, Host: l.o.Host, Driver: l.o.Driver, Detail: detail}
}

func (l *Log) rotate() error {
	c := &l.c
	if c.f == nil {
		if err := l.open(); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	if c.size == 0 {
		return nil
	}
	to := rotatedName(l.path, c.fileFirstSeq)
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("cannot rotate %s: %s exists", l.path, to)
	}
	c.f.Close()
	c.f = nil
	if err := os.Rename(l.path, to); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	c.f, c.size = f, 0
	l.o.Log.WithField("file", to).Info("audit log rotated")
	return atomicfile.SyncDir(filepath.Dir(l.path))
}

func (l *Log) shutdown() error {
	c := &l.c
	var err error
	if n := len(c.kept); n > 0 {
		if err = l.flush(nil); err != nil {
			err = fmt.Errorf("%d audit records could not be written: %w", n, err)
		}
	}
	if c.f != nil {
		if cerr := c.f.Close(); cerr != nil && err == nil {
			err = cerr
		}
		c.f = nil
	}
	if c.key != nil {
		wipe(c.key)
	}
	if l.mirrorQ != nil {
		close(l.mirrorQ)
		select {
		case <-l.mirrorDone:
		case <-time.After(mirrorDrain):
		}
	}
	return err
}

// open opens (or creates) the current file and picks the chain up from its
// last record, or from the newest rotated file when it is empty. A partial
// last line, left by a crash in the middle of a write, was never
// acknowledged: it is moved to a side file, reported, and recorded.
func (l *Log) open() error {
	c := &l.c
	dir := filepath.Dir(l.path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	t, err := readTail(f)
	if err != nil {
		f.Close()
		return err
	}
	last := t.last
	if last == nil && t.size == 0 {
		if last, err = lastRotated(l.path); err != nil {
			f.Close()
			return err
		}
	}
	if len(t.torn) > 0 {
		if err := l.setAside(f, t); err != nil {
			f.Close()
			return err
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		f.Close()
		return err
	}
	c.f, c.size, c.fileFirstSeq = f, t.size, t.firstSeq
	c.seq, c.prev = 0, Genesis
	if last != nil {
		c.seq, c.prev = last.Seq, last.Hash
		if c.key != nil {
			target := c.epoch
			if last.Epoch != nil && *last.Epoch > target {
				target = *last.Epoch
			}
			if last.NextEpoch != nil && *last.NextEpoch > target {
				target = *last.NextEpoch // the epoch ended, the key file did not follow
			}
			if target > c.epoch {
				l.advanceKey(target)
			}
		}
	}
	return nil
}

func (l *Log) setAside(f *os.File, t tail) error {
	saved := fmt.Sprintf("%s.torn-%s", l.path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.WriteFile(saved, t.torn, 0o640); err != nil {
		return err
	}
	if err := f.Truncate(t.size); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	detail := fmt.Sprintf("a crash left a partial line of %d bytes at the end of %s; it was never acknowledged; its bytes are in %s",
		len(t.torn), l.path, saved)
	l.o.Log.WithField("saved", saved).Error("audit log: " + detail)
	rec := l.own(TornTail, detail)
	l.c.torn = &rec
	return nil
}

// tailWindow bounds how far back from the end the last record is searched.
const tailWindow = 1 << 20

type tail struct {
	size     int64   // bytes up to and including the last newline
	last     *Record // the last complete record, nil if none
	torn     []byte  // bytes after the last newline
	firstSeq uint64  // seq of the file's first record, 0 if none
}

// readTail finds the last complete record of f and what follows it.
func readTail(f *os.File) (tail, error) {
	var t tail
	st, err := f.Stat()
	if err != nil {
		return t, err
	}
	start := st.Size() - tailWindow
	if start < 0 {
		start = 0
	}
	buf := make([]byte, st.Size()-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return t, err
	}
	end := bytes.LastIndexByte(buf, '\n')
	if end < 0 {
		if start > 0 {
			return t, fmt.Errorf("%s: no record boundary in its last %d bytes", f.Name(), tailWindow)
		}
		t.torn = buf
		return t, nil
	}
	t.size = start + int64(end) + 1
	t.torn = buf[end+1:]
	line := buf[bytes.LastIndexByte(buf[:end], '\n')+1 : end]
	if t.last, err = parseLine(line); err != nil {
		return t, fmt.Errorf("%s: its last line is not an audit record (%v), so the chain cannot continue; check it with `hostpass audit verify`, then move the file away to start a new log", f.Name(), err)
	}
	t.firstSeq = firstSeq(f)
	return t, nil
}

// firstSeq reads the seq of f's first record: the encoder puts it right
// after time, within the first bytes of the line.
func firstSeq(f *os.File) uint64 {
	head := make([]byte, 128)
	n, _ := f.ReadAt(head, 0)
	i := bytes.Index(head[:n], []byte(`,"seq":`))
	if i < 0 {
		return 0
	}
	var seq uint64
	for _, b := range head[i+len(`,"seq":`) : n] {
		if b < '0' || b > '9' {
			break
		}
		seq = seq*10 + uint64(b-'0')
	}
	return seq
}

// parseLine decodes a line and checks it carries a hash.
func parseLine(line []byte) (*Record, error) {
	if _, _, ok := splitHash(line); !ok {
		return nil, errNoHash
	}
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, err
	}
	if r.Seq == 0 {
		return nil, errors.New("no seq")
	}
	return &r, nil
}

// lastRotated returns the last record of the newest rotated file, if any.
func lastRotated(path string) (*Record, error) {
	files, err := Files(path)
	if err != nil {
		return nil, err
	}
	var newest string
	for _, f := range files {
		if f != path {
			newest = f
		}
	}
	if newest == "" {
		return nil, nil
	}
	r, err := openReader(newest)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var last []byte
	err = eachLine(r, func(line []byte, complete bool) error {
		if complete {
			last = append(last[:0], line...)
		}
		return nil
	})
	if err != nil || last == nil {
		return nil, fmt.Errorf("reading the end of %s: %v", newest, err)
	}
	rec, err := parseLine(last)
	if err != nil {
		return nil, fmt.Errorf("%s: its last line is not an audit record: %v", newest, err)
	}
	return rec, nil
}

package audit

import (
	"bytes"
	"fmt"
	"runtime"
	"time"
)

// The committer: whoever holds Log.mu owns the current file and the
// chain's state. A caller that finds the log idle commits its own record
// (submit); otherwise the run goroutine gathers the records callers hand
// it into one write and one fsync (group commit). run also owns the
// timers: retries, checkpoints, epochs. The committer keeps teardown
// records in memory while the log is unwritable, and counts those it
// cannot keep in an audit.lost record.

const (
	// retryInterval is how often records kept in memory are offered to the
	// disk again while the log is unwritable.
	retryInterval = time.Second
	// maxBatch bounds how many records share one write and one fsync.
	maxBatch = 1024
)

// committer is the state only the holder of Log.mu touches.
type committer struct {
	f            logFile
	size         int64  // bytes of complete, durable records in f
	fileFirstSeq uint64 // seq of f's first record, names f when rotated
	seq          uint64 // last durable seq
	prev         string // hash of the last durable record
	kept         []Record
	keptBytes    int // encoded size of kept
	lost         lost
	torn         *Record // set aside at open; written before anything else
	// uncut: a failed write could not be cut back to size; the next open
	// sets aside everything past size, so that the chain never continues
	// from records whose callers were told they failed.
	uncut   error
	rotated rotatedEnd // the newest rotated file's last record, once read
	views   viewState  // the last host.view written (view.go)

	key          []byte // nil: unsealed
	epoch        uint64
	epochRecords int // records sealed in this epoch
	epochTimer   *time.Timer
	evolveDue    bool      // the epoch's time is up; evolve once the log is writable
	failedAt     time.Time // the last write that failed
	// keyFileStale: the key file could not be overwritten with the current
	// epoch's key. No further epoch is ended until it is (open takes a key
	// file at most one epoch behind the log), and a stop says so.
	keyFileStale error
	evolveFailed bool // and its failure was reported

	sign  *signing   // nil: unsigned (checkpointing.go)
	start startState // what Start owes, and whether it was written
}

// lost counts the teardown records dropped past Options.MaxKept.
type lost struct {
	n           int
	first, last time.Time
}

func (l *Log) run() {
	defer close(l.stopped)
	c := &l.c
	var retry <-chan time.Time
	for {
		l.mu.Lock()
		epochEnd, checkpoint := l.timers()
		l.watched = [2]<-chan time.Time{epochEnd, checkpoint}
		l.mu.Unlock()
		select {
		case <-l.wake:
			l.mu.Lock()
			// None wait when callers committed them themselves, or when
			// a caller's commit left run only its timers to arm.
			if len(l.requests) > 0 {
				l.commit(gather(l.requests, nil))
			}
		case <-retry:
			l.mu.Lock()
			l.commit(nil)
		case <-checkpoint:
			l.mu.Lock()
			// A caller's commit may have moved the checkpoint on since
			// the timer fired.
			if s := c.sign; s != nil && s.timer != nil && s.timer.C == checkpoint && !time.Now().Before(s.deadline) {
				l.checkpointTick()
			}
			l.commit(nil)
		case done := <-l.starts:
			l.mu.Lock()
			c.start.owed = true
			done <- l.flush(nil)
			l.commit(nil)
		case <-epochEnd:
			l.mu.Lock()
			if c.epochTimer != nil && c.epochTimer.C == epochEnd { // not ended by a caller's commit meanwhile
				c.epochTimer = nil
				c.evolveDue = true // commit evolves, now or on a retry tick
				l.commit(nil)
			}
		case done := <-l.rotates:
			l.mu.Lock()
			done <- l.rotate()
			l.mu.Unlock()
			continue
		case done := <-l.closes:
			l.mu.Lock()
			l.closed = true
			done <- l.shutdown()
			l.mu.Unlock()
			return
		}
		if len(l.requests) > 0 { // a batch was full
			l.wakeRun()
		}
		retry = nil
		if l.owesRetry() {
			retry = time.After(retryInterval)
		}
		l.mu.Unlock()
	}
}

// timers are the channels of the epoch's and the checkpoint's timers.
func (l *Log) timers() (epochEnd, checkpoint <-chan time.Time) {
	if t := l.c.epochTimer; t != nil {
		epochEnd = t.C
	}
	return epochEnd, l.checkpointTimer()
}

// owesRetry says the log holds what only a retry writes: records kept or
// lost, an epoch to end, records or a checkpoint owed.
func (l *Log) owesRetry() bool {
	c := &l.c
	return len(c.kept) > 0 || c.lost.n > 0 || c.evolveDue || l.owesRecords() || l.owesCheckpoint()
}

// leaveWork, after a caller's commit, wakes run if the commit left it
// work: requests past a full batch, a retry to arm, or timers changed.
func (l *Log) leaveWork() {
	epochEnd, checkpoint := l.timers()
	if len(l.requests) > 0 || l.owesRetry() || l.watched != [2]<-chan time.Time{epochEnd, checkpoint} {
		l.wakeRun()
	}
}

// gather adds to batch the requests waiting on requests, then yields once
// (runtime.Gosched) and takes the requests made meanwhile. Callers whose
// hand-off is already waiting (parked on the channel) always join the
// batch. The yield is a hint, not a guarantee: it lets handlers that are
// ready to run, on this core or another, reach the channel before the
// write, so that they share its fsync rather than each pay one after the
// other; which goroutines run during the yield is up to the scheduler.
// With nothing else ready (a single caller) the yield returns at once, so
// a lone record waits for nothing. BenchmarkAppendDisk16 reports the
// effect as records/fsync.
func gather(requests <-chan request, batch []request) []request {
	for yielded := false; len(batch) < maxBatch; {
		select {
		case r := <-requests:
			batch = append(batch, r)
			continue
		default:
		}
		if yielded {
			return batch
		}
		runtime.Gosched()
		yielded = true
	}
	return batch
}

// commit writes the kept records and the batch in one write and one fsync,
// then answers every caller.
func (l *Log) commit(batch []request) {
	c := &l.c
	recs := make([]Record, len(batch))
	for i, r := range batch {
		recs[i] = r.rec
	}
	err := l.flush(l.withCheckpoint(recs))
	for _, r := range batch {
		switch {
		case err == nil || !r.keep:
			r.done <- err
		case len(c.kept) < l.o.MaxKept:
			rec, size := boundKept(r.rec)
			if c.keptBytes+size > l.o.MaxKeptBytes {
				c.lost.add(r.rec.Time)
				r.done <- fmt.Errorf("%w; not kept either: the %d records waiting in memory hold %d bytes, and %d more would pass the limit of %d, so this one is counted in an audit.lost record once the log is writable", err, len(c.kept), c.keptBytes, size, l.o.MaxKeptBytes)
				continue
			}
			c.kept, c.keptBytes = append(c.kept, rec), c.keptBytes+size
			l.pending.Store(int64(len(c.kept))) // before the caller hears back and asks Pending
			r.done <- err
		default:
			c.lost.add(r.rec.Time)
			r.done <- fmt.Errorf("%w; not kept either: %d records already wait in memory (the limit), so this one is counted in an audit.lost record once the log is writable", err, len(c.kept))
		}
	}
	l.pending.Store(int64(len(c.kept)))
	if err != nil {
		return
	}
	l.checkpointIfDue()
	if (c.key != nil || c.sign != nil) && (c.epochRecords >= l.o.EpochRecords || c.evolveDue) {
		l.evolve()
	}
	if l.o.MaxSize > 0 && c.size >= l.o.MaxSize {
		if err := l.rotate(); err != nil {
			l.o.Log.WithError(err).Error("audit log: rotation failed; writing on to the current file")
		}
	}
}

// flush writes the kept records, an audit.lost record for those that could
// not be kept, then more, in one write; on success nothing is kept any
// longer.
func (l *Log) flush(more []Record) error {
	c := &l.c
	recs := append([]Record(nil), c.kept...)
	if c.lost.n > 0 {
		recs = append(recs, l.lostRecord())
	}
	recs = append(recs, more...)
	if len(recs) == 0 && !l.owesRecords() {
		return nil
	}
	if err := l.write(recs); err != nil {
		c.failedAt = time.Now()
		return err
	}
	c.kept, c.keptBytes, c.lost = nil, 0, lost{}
	l.pending.Store(0)
	return nil
}

func (n *lost) add(t time.Time) {
	if t.IsZero() {
		t = time.Now().UTC()
	}
	if n.n == 0 || t.Before(n.first) {
		n.first = t
	}
	if n.n == 0 || t.After(n.last) {
		n.last = t
	}
	n.n++
}

// lostRecord says how many teardown records were dropped, and when they
// were made, while the log was unwritable.
func (l *Log) lostRecord() Record {
	n := l.c.lost
	rec := l.selfRecord(Lost, fmt.Sprintf("%d teardown records made from %s to %s were lost: the log was unwritable and the records waiting in memory were at their limit (%d records, %d bytes)",
		n.n, n.first.Format(time.RFC3339Nano), n.last.Format(time.RFC3339Nano), l.o.MaxKept, l.o.MaxKeptBytes))
	rec.Lost = &LostRecords{Records: n.n, First: n.first, Last: n.last}
	return rec
}

// write numbers, chains and seals recs, writes them in one write and
// fsyncs. On failure the file is cut back to its last durable size and
// closed, so no half-written line stays behind and the next attempt reads
// the file's tail again.
func (l *Log) write(recs []Record) error {
	c := &l.c
	if c.f == nil {
		if err := l.open(); err != nil {
			if l.o.Observer != nil {
				l.o.Observer.Failed(err) // a log it cannot reopen is a failed write too
			}
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	recs = l.prepareCheckpoints(l.owedRecords(recs))
	if c.torn != nil {
		recs = append([]Record{*c.torn}, recs...)
	}
	if len(recs) == 0 { // Start on an empty plain log, or checkpoints that cannot be signed
		l.written(nil)
		return nil
	}
	recs, views := c.withViews(recs)
	// One buffer holds the batch's lines, each followed by its newline;
	// lines are cut from it once it is whole. Sized for the kept records
	// (flush puts them in recs; their encoded size is known, a bound) and
	// a typical 512 bytes for each other record; append grows it past
	// that. 10,000 kept records of 250 bytes are 2.5 MB, not 10 MB.
	size := c.keptBytes + len(c.kept) + max(len(recs)-len(c.kept), 0)*512
	enc := newLineEncoder(make([]byte, 0, size), c.key)
	ends := make([]int, len(recs)) // where each line ends in the buffer
	seq, prev, epoch := c.seq, c.prev, c.epoch
	inEpoch := 0 // the first of recs in the epoch of the last
	for i := range recs {
		seq++
		recs[i].Seq, recs[i].Prev, recs[i].Schema = seq, prev, Schema
		recs[i].Epoch = nil
		if c.key != nil || c.sign != nil {
			e := epoch
			recs[i].Epoch = &e
		}
		if c.sign != nil && recs[i].Event == Checkpoint && recs[i].Checkpoint == "" {
			if err := l.signCheckpoint(&recs[i], seq, epoch, cutLines(enc.w.b, ends[:i])); err != nil {
				return fmt.Errorf("%w: signing a checkpoint: %w", ErrUnavailable, err)
			}
		}
		_, err := enc.record(&recs[i])
		if err != nil {
			return fmt.Errorf("%w: encoding record: %w", ErrUnavailable, err)
		}
		if c.sign != nil && recs[i].Event == EpochEnd && recs[i].NextEpoch != nil {
			epoch, inEpoch = *recs[i].NextEpoch, i+1 // a signed log's epoch ends in this write
		}
		prev = recs[i].Hash
		enc.w.b = append(enc.w.b, '\n')
		ends[i] = len(enc.w.b)
	}
	buf := enc.w.b
	lines := cutLines(buf, ends)
	_, err := c.f.Write(buf)
	var synced time.Duration
	if err == nil {
		wait := l.treeAppend(lines) // a signed log's tree, beside the fsync
		syncStart := time.Now()
		err = c.f.Sync()
		synced = time.Since(syncStart)
		wait(err)
	}
	if err != nil {
		if l.o.Observer != nil {
			l.o.Observer.Failed(err)
		}
		if terr := c.f.Truncate(c.size); terr != nil {
			// Records of this batch may be whole in the file, and their
			// callers hear "failed": the next open sets them aside.
			c.uncut = terr
			l.o.Log.WithError(terr).Error("audit log: cannot cut a failed write back to the last acknowledged record; the log is unwritable until it can")
			if merr := writeUncut(l.path, c.size); merr != nil {
				l.o.Log.WithError(merr).Error("audit log: cannot record the last acknowledged size either; a restart before the log is writable again would take the failed records as part of the chain")
			}
		}
		c.f.Close()
		c.f = nil
		return fmt.Errorf("%w: writing %s: %w", ErrUnavailable, l.path, err)
	}
	if c.size == 0 {
		c.fileFirstSeq = c.seq + 1
	}
	c.size += int64(len(buf))
	if epoch != c.epoch {
		l.epochStarted()
	}
	c.seq, c.prev, c.epoch = seq, prev, epoch
	c.views = views
	c.torn = nil
	l.written(recs)
	if l.o.Observer != nil {
		l.o.Observer.Synced(synced, recs)
	}
	if n := len(recs) - inEpoch; (c.key != nil || c.sign != nil) && n > 0 {
		if c.epochRecords == 0 {
			c.epochTimer = time.NewTimer(l.o.EpochInterval)
		}
		c.epochRecords += n
	}
	if l.mirrorQ != nil {
		for i, line := range lines {
			if l.o.MirrorWants != nil && !l.o.MirrorWants(recs[i]) {
				continue
			}
			select {
			// A copy: a line of the batch's buffer would keep the whole
			// buffer alive while it waits, megabytes when a record had
			// to be cut to MaxRecord. Lines are at most MaxRecord bytes.
			case l.mirrorQ <- &mirrored{recs[i], bytes.Clone(line)}:
			default:
				if l.o.Observer != nil {
					l.o.Observer.MirrorDropped()
				}
				if l.mirrorDropped.Add(1)%1000 == 1 {
					l.o.Log.WithField("dropped", l.mirrorDropped.Load()).Warn("audit log: the mirror (daemon log, syslog) is behind and misses records; the file has them all")
				}
			}
		}
	}
	return nil
}

// cutLines cuts buf, lines each followed by a newline, at ends, into the
// lines without their newlines. Each is capped at its end, so that a mirror
// appending to a line copies it rather than write over the next.
func cutLines(buf []byte, ends []int) [][]byte {
	lines := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		lines[i] = buf[start : end-1 : end-1]
		start = end
	}
	return lines
}

// selfRecord is a record the log writes about itself (audit.lost,
// audit.epoch, audit.torn_tail), not one a caller handed it.
func (l *Log) selfRecord(event Event, detail string) Record {
	return Record{Time: time.Now().UTC(), Event: event, Outcome: OK, Host: l.o.Host, Driver: l.o.Driver, Detail: detail}
}

// shutdown is Close's work, the committer's last: write what is kept, end
// a sealed log's epoch, close the file, wipe the key and drain the mirror.
func (l *Log) shutdown() error {
	c := &l.c
	var err error
	if n := len(c.kept) + c.lost.n; n > 0 {
		if err = l.flush(nil); err != nil {
			err = fmt.Errorf("%d audit records could not be written: %w", n, err)
		}
	}
	// A clean stop ends the epoch: otherwise the key file keeps the key
	// that sealed the last records, and whoever takes the host after the
	// stop could rewrite them.
	if err == nil && c.key != nil && (c.epochRecords > 0 || c.keyFileStale != nil) {
		l.evolve()
		switch {
		case c.keyFileStale != nil:
			err = fmt.Errorf("the sealing key file could not be overwritten (%v): it still holds an older key, which can reseal records of epoch %d and later", c.keyFileStale, c.epoch)
		case c.evolveDue:
			err = fmt.Errorf("the sealing epoch could not be ended at stop: the key file still holds the key of epoch %d, which sealed the last records", c.epoch)
		}
	}
	if err == nil {
		err = l.stopRecords()
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
	if s := c.sign; s != nil {
		s.key.Wipe()
		if s.retiring != nil {
			s.retiring.Wipe()
		}
		l.settleTree()
		l.dropTree()
		if s.timer != nil {
			s.timer.Stop()
		}
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

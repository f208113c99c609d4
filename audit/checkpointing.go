package audit

import (
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// The writer's side of signed checkpoints (docs/proof.md): in a signed log
// (Options.SignKey) the committer keeps the Merkle tree of the records
// (proof.go, stored in <log>.tree), writes audit.checkpoint records on a
// schedule, and ends each epoch by stepping the signing key file and
// logging the next key's certification. Here too: the records every log
// writes at start (audit.restart) and at a clean stop (audit.stop).

// Checkpoint schedule defaults (Options.CheckpointRecords,
// CheckpointInterval, Heartbeat).
const (
	DefaultCheckpointRecords  = 1000
	DefaultCheckpointInterval = time.Minute
	DefaultHeartbeat          = 5 * time.Minute
)

// signing is a signed log's state; only the run goroutine touches it.
type signing struct {
	key *SignKey
	// tree holds every durable record; nil until a checkpoint needs it,
	// or after an append to its store failed: OpenTree rebuilds it from
	// the log.
	tree *Tree
	// certOwed: the key file has stepped to key's epoch, and the log does
	// not hold its certification yet: the next write starts with the
	// audit.epoch that carries it.
	certOwed []byte
	// The schedule: records written since the last checkpoint, when the
	// first of them was written, when the last checkpoint was, and the
	// timer for the next interval or heartbeat checkpoint.
	since      int
	sinceFirst time.Time
	last       time.Time
	deadline   time.Time
	timer      *time.Timer
	// due: a checkpoint that could not be written (the log, or its tree,
	// was unavailable), retried on the retry tick.
	due string
	// lastWasCheckpoint: the last record written is an audit.checkpoint.
	lastWasCheckpoint bool
	lastReason        string // its checkpoint_reason
	// treeFailed: the tree could not be rebuilt (reported once); no
	// rebuild is tried again before treeAfter, since each reads the log.
	treeFailed bool
	treeAfter  time.Time
	// stepAfter: the key file's step failed; it is tried again from then
	// on, not at every group commit.
	stepAfter time.Time
	// stepping: a step of the key file is under way (evolveSigned); its
	// result comes on the channel.
	stepping chan stepped
}

// startState is what Start owes the log.
type startState struct {
	// found is the log's last record at the first open, nil for an empty
	// log; looked says the log has been opened.
	found  *chainEnd
	looked bool
	owed   bool // Start was called and its records are not written yet
	done   bool // they are: a clean stop ends with audit.stop
}

// Start writes the records that open a daemon's run: audit.restart when
// the log already has records (where it ended, and whether the daemon
// before stopped cleanly), then, in a signed log, a checkpoint. Call it
// once, after OpenWith and before anything is appended; Close then ends
// the run with audit.stop. On error (the log is unwritable) the records
// are written as soon as the log is writable again, before any other.
func (l *Log) Start() error {
	done := make(chan error, 1)
	select {
	case l.starts <- done:
		return <-done
	case <-l.stopped:
		return errClosed
	}
}

// owesRecords says the log must write records of its own before any other
// (Start's, or a logged certification).
func (l *Log) owesRecords() bool {
	c := &l.c
	return c.start.owed || (c.sign != nil && c.sign.certOwed != nil)
}

// owedRecords puts the records the log owes ahead of recs: the audit.epoch
// with the certification of a key that has stepped, then Start's records.
func (l *Log) owedRecords(recs []Record) []Record {
	c := &l.c
	var owed []Record
	if c.sign != nil && c.sign.certOwed != nil {
		marker := l.selfRecord(EpochEnd, "")
		next := c.sign.key.Epoch()
		marker.NextEpoch, marker.KeyCert = &next, string(c.sign.certOwed)
		owed = append(owed, marker)
	}
	if c.start.owed {
		if f := c.start.found; f != nil {
			owed = append(owed, l.restartRecord(f))
		}
		if c.sign != nil {
			owed = append(owed, l.checkpointRecord(CheckpointStart))
		}
	}
	if len(owed) == 0 {
		return recs
	}
	return append(owed, recs...)
}

func (l *Log) restartRecord(f *chainEnd) Record {
	clean := f.Event == Stop
	how := "cleanly (its last record is audit.stop)"
	if !clean {
		how = "without a clean stop (its last record is not audit.stop: a crash, kill -9 or power loss); records of calls in flight then may be missing"
	}
	rec := l.selfRecord(Restart, fmt.Sprintf("hostpass started on a log that ends at seq %d (%s, %s); the daemon before stopped %s",
		f.Seq, f.Event, f.Time.Format(time.RFC3339Nano), how))
	rec.LogEnd = &LogEnd{Seq: f.Seq, Hash: f.Hash, Time: f.Time, Event: f.Event}
	rec.CleanStop = Flag(clean)
	return rec
}

func (l *Log) stopRecord() Record {
	return l.selfRecord(Stop, "hostpass stopped cleanly: this is the last record it wrote")
}

// checkpointRecord is an audit.checkpoint yet to be signed: write signs
// it once it knows the record's seq.
func (l *Log) checkpointRecord(reason string) Record {
	rec := l.selfRecord(Checkpoint, "")
	rec.CheckpointReason = reason
	return rec
}

// openSigned checks the signing key file against the log's last record
// when the log is opened: the key file's epoch is the log's, or one ahead
// when a crash came between stepping the key file and logging the new
// key's certification (then that certification is owed).
func (l *Log) openSigned(last *chainEnd) error {
	c, s := &l.c, l.c.sign
	if s.certOwed != nil {
		return nil // the key stepped in this run; its audit.epoch is owed
	}
	kf := s.key.Epoch()
	if last == nil || last.Epoch == nil {
		if kf > 0 {
			l.o.Log.WithField("epoch", kf).Warn("audit log: starting to sign a log (new, or unsigned so far) with a key file past epoch 0: `hostpass audit verify --pubkey` needs the certifications of epochs 1 to this one, which this log does not hold; start a new signing chain (hostpass audit keygen --sign) instead")
		}
		c.epoch = kf
		return nil
	}
	epoch := *last.Epoch
	if last.NextEpoch != nil {
		epoch = *last.NextEpoch
	}
	switch {
	case epoch == kf:
		c.epoch = kf
	case epoch+1 == kf && last.NextEpoch == nil:
		c.epoch, s.certOwed = epoch, s.key.Cert()
		l.o.Log.WithField("epoch", kf).Warn("audit log: the signing key file stepped to this epoch and the log does not hold its certification (a crash between the two): writing it first")
	default:
		return fmt.Errorf("%s: its last record, seq %d, is in signing epoch %d, and the signing key file %s holds the key of epoch %d (the daemon steps the key file once, then logs the step, so it is the log's epoch or one past it): not a log this key signed, or the key file is not this log's; check the log with `hostpass audit verify --pubkey`, then move it aside or start a new signing chain (hostpass audit keygen --sign)",
			l.path, last.Seq, epoch, l.o.SignKey, kf)
	}
	return nil
}

// prepareCheckpoints makes sure the tree holds every durable record before
// a write with checkpoints: a checkpoint that cannot be signed (the tree
// cannot be rebuilt from the log) is dropped from recs and owed.
func (l *Log) prepareCheckpoints(recs []Record) []Record {
	s := l.c.sign
	if s == nil {
		return recs
	}
	has := false
	for i := range recs {
		has = has || recs[i].Event == Checkpoint
	}
	if !has {
		return recs
	}
	if s.stepping != nil {
		for _, r := range recs {
			if r.Event == Checkpoint && s.due == "" {
				s.due = r.CheckpointReason
			}
		}
		return withoutCheckpoints(recs)
	}
	if s.tree == nil && time.Now().Before(s.treeAfter) {
		return withoutCheckpoints(recs)
	}
	err := l.openTree()
	if err == nil {
		s.treeFailed = false
		return recs
	}
	if !s.treeFailed {
		l.o.Log.WithError(err).Errorf("audit log: cannot rebuild the Merkle tree from the log; no checkpoint is written until it can be (tried again every %s)", l.o.CheckpointInterval)
		s.treeFailed = true
	}
	s.treeAfter = time.Now().Add(l.o.CheckpointInterval)
	return withoutCheckpoints(recs)
}

// withoutCheckpoints drops the checkpoints from recs: the tree is not
// there to sign. The schedule goes on; they are not owed.
func withoutCheckpoints(recs []Record) []Record {
	kept := make([]Record, 0, len(recs))
	for _, r := range recs {
		if r.Event != Checkpoint {
			kept = append(kept, r)
		}
	}
	return kept
}

// openTree opens the tree store beside the log, rebuilding what it lacks.
func (l *Log) openTree() error {
	c, s := &l.c, l.c.sign
	if s.tree != nil {
		return nil
	}
	t, err := OpenTree(l.path)
	if err != nil {
		return err
	}
	if n := t.Size(); n != int64(c.seq) {
		t.Close()
		return fmt.Errorf("the tree rebuilt from %s holds %d records, the log %d", l.path, n, c.seq)
	}
	s.tree = t
	return nil
}

// signCheckpoint signs rec, an audit.checkpoint at seq in epoch: the tree
// of every record before it, the durable ones and before, those of this
// write (lines).
func (l *Log) signCheckpoint(rec *Record, seq, epoch uint64, lines [][]byte) error {
	s := l.c.sign
	if s.key.Epoch() != epoch {
		return fmt.Errorf("a checkpoint in epoch %d, and the signing key is epoch %d's", epoch, s.key.Epoch())
	}
	root, err := s.tree.rootWith(lines)
	if err != nil {
		return err
	}
	note, err := SignCheckpoint(s.key, s.key.Origin(), int64(seq-1), root)
	if err != nil {
		return err
	}
	rec.Checkpoint = string(note)
	return nil
}

// rootWith is the root of the tree with lines added, without storing them.
func (t *Tree) rootWith(lines [][]byte) (tlog.Hash, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	base := tlog.StoredHashCount(t.n)
	r := &pending{store: t.hashes, base: base}
	n := t.n
	for _, line := range lines {
		hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(line), r)
		if err != nil {
			return tlog.Hash{}, err
		}
		r.hs = append(r.hs, hs...)
		n++
	}
	return tlog.TreeHash(n, r)
}

// written updates the tree and the schedule once recs (lines) are durable.
func (l *Log) written(recs []Record, lines [][]byte) {
	c, s := &l.c, l.c.sign
	if c.start.owed {
		c.start.owed, c.start.done = false, true
	}
	if s == nil {
		return
	}
	s.certOwed = nil // written first, if it was owed
	now := time.Now()
	if len(recs) == 0 || s.tree == nil && now.Before(s.treeAfter) {
		// Checkpoints were dropped: the next is tried on the schedule.
		s.last, s.sinceFirst, s.due = now, now, ""
		l.armCheckpoints()
		if len(recs) == 0 {
			return
		}
	}
	if s.tree != nil {
		if err := s.tree.Append(lines...); err != nil {
			l.o.Log.WithError(err).Warn("audit log: cannot store the Merkle tree's hashes; it is rebuilt from the log for the next checkpoint")
			s.tree.Close()
			s.tree = nil
		}
	}
	for _, r := range recs {
		switch r.Event {
		case Checkpoint:
			s.since, s.last, s.due = 0, now, ""
		case EpochEnd: // bookkeeping: the next checkpoint covers it, and it does not call for one
		default:
			if s.since == 0 {
				s.sinceFirst = now
			}
			s.since++
		}
	}
	lastRec := recs[len(recs)-1]
	s.lastWasCheckpoint, s.lastReason = lastRec.Event == Checkpoint, lastRec.CheckpointReason
	l.armCheckpoints()
}

// armCheckpoints sets the timer for the next interval or heartbeat
// checkpoint: Heartbeat after the last one, or CheckpointInterval after
// the first record it does not cover, whichever comes first.
func (l *Log) armCheckpoints() {
	s := l.c.sign
	at := s.last.Add(l.o.Heartbeat)
	if s.since > 0 {
		if t := s.sinceFirst.Add(l.o.CheckpointInterval); t.Before(at) {
			at = t
		}
	}
	if at.Equal(s.deadline) && s.timer != nil {
		return
	}
	s.deadline = at
	if s.timer == nil {
		s.timer = time.NewTimer(time.Until(at))
		return
	}
	s.timer.Stop()
	s.timer.Reset(time.Until(at))
}

// checkpointTimer is the channel run waits on for the next scheduled
// checkpoint; nil in an unsigned log.
func (l *Log) checkpointTimer() <-chan time.Time {
	if s := l.c.sign; s != nil && s.timer != nil {
		return s.timer.C
	}
	return nil
}

// checkpointTick writes the checkpoint the timer is for. Once written,
// the timer is set again; if it cannot be, the retry tick writes it.
func (l *Log) checkpointTick() {
	s := l.c.sign
	s.timer, s.deadline = nil, time.Time{}
	reason := CheckpointHeartbeat
	if s.since > 0 {
		reason = CheckpointInterval
	}
	if !l.signable() {
		s.due = reason // written once the key has stepped
		return
	}
	l.writeCheckpoint(reason)
}

// withCheckpoint ends a group commit's records with the checkpoint they
// make due, if any: the epoch's last (the epoch ends after them), or one
// for CheckpointRecords records. It shares the batch's write and fsync, so
// that a checkpoint costs a signature, not a write of its own.
func (l *Log) withCheckpoint(recs []Record) []Record {
	c, s := &l.c, l.c.sign
	if !l.signable() || len(recs) == 0 {
		return recs
	}
	switch {
	case s.certOwed == nil && !c.evolveFailed && (c.evolveDue || c.epochRecords+len(recs) >= l.o.EpochRecords):
		return append(recs, l.checkpointRecord(CheckpointEpoch))
	case s.since+len(recs) >= l.o.CheckpointRecords:
		return append(recs, l.checkpointRecord(CheckpointRecords))
	}
	return recs
}

// checkpointIfDue writes a checkpoint once CheckpointRecords records are
// not covered by one, or one owed since the log was unwritable.
func (l *Log) checkpointIfDue() {
	s := l.c.sign
	switch {
	case !l.signable():
	case s.due != "":
		l.writeCheckpoint(s.due)
	case s.since >= l.o.CheckpointRecords:
		l.writeCheckpoint(CheckpointRecords)
	}
}

// writeCheckpoint writes an audit.checkpoint, in a write of its own so
// that the records kept back go before it; if it cannot, it is owed.
func (l *Log) writeCheckpoint(reason string) error {
	s := l.c.sign
	if err := l.flush([]Record{l.checkpointRecord(reason)}); err != nil {
		if s.due == "" {
			s.due = reason
		}
		return err
	}
	return nil
}

// owesCheckpoint says a checkpoint waits for the log to be writable.
func (l *Log) owesCheckpoint() bool { return l.c.sign != nil && l.c.sign.due != "" }

// evolveSigned ends a signed log's epoch: a checkpoint signed by the
// epoch's key (unless the record just written is it: the epoch checkpoint
// that ended the last group commit, or at a clean stop the stop
// checkpoint), the key file steps (StepSignKeyFile wipes the old key),
// then the audit.epoch with the new key's certification.
//
// The step (a key pair and three fsyncs, milliseconds) runs beside the
// committer, which goes on writing records in the old epoch meanwhile but
// no checkpoint (stepDone); the audit.epoch then starts the next write
// (the next group commit, or the retry tick's a second later), so that it
// costs no write of its own, and nothing is signed by the new key before
// it. At a clean stop the step is waited for and the audit.epoch written.
// If the log or the key file cannot be written, the step is retried a
// second later; a crash while the certification is owed leaves it in the
// key file, and the next start writes it first.
func (l *Log) evolveSigned(atStop bool) {
	s := l.c.sign
	if s.stepping != nil {
		if !atStop {
			return
		}
		l.stepDone(<-s.stepping)
	}
	if s.certOwed == nil {
		if !atStop && time.Now().Before(s.stepAfter) {
			return
		}
		done := s.lastWasCheckpoint && (atStop || s.lastReason == CheckpointEpoch)
		if !done {
			if err := l.writeCheckpoint(CheckpointEpoch); err != nil {
				l.evolveFailedWith(err, "cannot write the epoch's last checkpoint")
				return
			}
		}
		ch := make(chan stepped, 1)
		go func(cur *SignKey) {
			next, cert, err := StepSignKeyFile(l.o.SignKey, cur)
			ch <- stepped{next, cert, err}
		}(s.key)
		s.stepping = ch
		if !atStop {
			return
		}
		if l.stepDone(<-ch); s.certOwed == nil {
			return
		}
	}
	if !atStop {
		return
	}
	if err := l.flush(nil); err != nil {
		l.evolveFailedWith(err, "cannot log the new signing key's certification; nothing is signed by that key before it is")
	}
}

// stepped is what a key file's step gave.
type stepped struct {
	next *SignKey
	cert []byte
	err  error
}

// stepDone takes the step's result: the new key, its certification owed to
// the log; or the old key kept and the step retried a second later.
func (l *Log) stepDone(r stepped) {
	s := l.c.sign
	s.stepping = nil
	if r.err != nil {
		s.stepAfter = time.Now().Add(retryInterval)
		l.evolveFailedWith(r.err, "cannot step the signing key file; its key stays, and the step is retried")
		return
	}
	s.key, s.certOwed = r.next, r.cert
	l.o.Log.WithField("epoch", r.next.Epoch()).Debug("audit log: signing key stepped")
}

// stepResult is the channel run waits on for a step under way; nil when
// none is.
func (l *Log) stepResult() <-chan stepped {
	if s := l.c.sign; s != nil {
		return s.stepping
	}
	return nil
}

// signable says checkpoints can be signed now: not while the key steps
// (the step reads the key, then wipes it).
func (l *Log) signable() bool { return l.c.sign != nil && l.c.sign.stepping == nil }

// epochStarted: a write ended a signed log's epoch with its audit.epoch
// (in evolveSigned, or first thing after a crash left it owed).
func (l *Log) epochStarted() {
	c := &l.c
	c.epochRecords, c.evolveDue, c.evolveFailed = 0, false, false
	if c.epochTimer != nil {
		c.epochTimer.Stop()
		c.epochTimer = nil
	}
}

func (l *Log) evolveFailedWith(err error, what string) {
	c := &l.c
	if !c.evolveFailed {
		l.o.Log.WithError(err).Error("audit log: ending the signing epoch: " + what)
	}
	c.evolveDue, c.evolveFailed = true, true
}

// stopRecords is a clean stop's end, after the records kept: a signed
// log's stop checkpoint and epoch end, then audit.stop.
func (l *Log) stopRecords() error {
	c := &l.c
	if s := c.sign; s != nil && c.f != nil {
		if s.stepping != nil {
			l.stepDone(<-s.stepping)
		}
		if err := l.writeCheckpoint(CheckpointStop); err != nil {
			return fmt.Errorf("the stop checkpoint could not be written: %w", err)
		}
		if c.epochRecords > 0 || s.certOwed != nil {
			l.evolveSigned(true)
			if c.evolveDue {
				return fmt.Errorf("the signing epoch could not be ended at stop: the key file holds the key of epoch %d, which signed the last checkpoint", c.epoch)
			}
		}
	}
	if !c.start.done {
		return nil
	}
	if err := l.flush([]Record{l.stopRecord()}); err != nil {
		return fmt.Errorf("the audit.stop record could not be written, so the next start reports an unclean stop: %w", err)
	}
	return nil
}

package audit

import (
	"fmt"
	"time"
)

// The writer's side of signed checkpoints (docs/proof.md): in a signed log
// (Options.SignKey) the committer writes audit.checkpoint records on a
// schedule and ends each epoch by stepping the signing key file and logging
// the next key's certification. The tree they sign is kept in
// checkpointtree.go; the records of a daemon's start and stop in
// startstop.go.

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
	treeBusy   chan error // an append under way (treeAppend)
	// stepAfter: the key file's step failed; it is tried again from then
	// on, not at every group commit.
	stepAfter time.Time
	// stepping: a step of the key file is under way (evolveSigned); its
	// result comes on the channel.
	stepping chan stepped
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

// written updates the schedule once recs are durable.
func (l *Log) written(recs []Record) {
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

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

// signing is a signed log's state; only whoever holds Log.mu touches it.
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
	// treeFailed: the tree could not be rebuilt (reported once); no
	// rebuild is tried again before treeAfter, since each reads the log.
	treeFailed bool
	treeAfter  time.Time
	treeBusy   chan error // an append under way (treeAppend)
	// stepAfter: the key file's step failed; it is tried again from then
	// on, not at every group commit.
	stepAfter time.Time
	// heldSince: the step was first held for stepQuiet (stepHeld).
	heldSince time.Time
	// fresh: the log held no signed record when it was opened, so the
	// key's certification pins another log's tree (verify reports a log
	// started under a later key as a late start): checkVouched skips it.
	fresh bool
	// retiring: the key of the epoch that is ending, kept after the key
	// file stepped until it has signed the epoch's last checkpoint, in the
	// write that carries the audit.epoch; then wiped.
	retiring *SignKey
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
		c.epoch, s.fresh = kf, true
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
	if s.certOwed != nil && len(recs) > 0 {
		s.certOwed = nil // written first, it was owed
		if s.retiring != nil {
			s.retiring.Wipe()
			s.retiring = nil
		}
	}
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
	s.lastWasCheckpoint = lastRec.Event == Checkpoint
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
	l.writeCheckpoint(reason)
}

// withCheckpoint ends a group commit's records with the checkpoint they
// make due, if any: one for CheckpointRecords records. It shares the
// batch's write and fsync, so that a checkpoint costs a signature, not a
// write of its own. (An epoch's last checkpoint comes with its audit.epoch,
// once the key file has stepped: evolveSigned.)
func (l *Log) withCheckpoint(recs []Record) []Record {
	// The records kept in memory during an outage go first in the same
	// write: counted too, so that fewer than CheckpointRecords records ever
	// follow the last checkpoint (keyvouch.go relies on it after a crash).
	s, n := l.c.sign, len(l.c.kept)+len(recs)
	if s == nil || n == 0 {
		return recs
	}
	if s.since+n >= l.o.CheckpointRecords {
		return append(recs, l.checkpointRecord(CheckpointRecords))
	}
	return recs
}

// checkpointIfDue writes a checkpoint once CheckpointRecords records are
// not covered by one, or one owed since the log was unwritable.
func (l *Log) checkpointIfDue() {
	s := l.c.sign
	switch {
	case s == nil:
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

// evolveSigned ends a signed log's epoch, on the committer: the key file
// steps (the new key's certification pins the tree of every durable
// record), then the next write, before any other record, carries the
// epoch's last checkpoint, signed by the old key (kept in memory as
// retiring until then; none when the last record is a checkpoint), and the
// audit.epoch with the new key's certification; then the old key is wiped.
// Callers wait meanwhile (a key pair and three fsyncs, milliseconds), so
// that no record lies between the tree the certification pins and the
// epoch's last checkpoint: every record of an epoch but its audit.epoch is
// pinned by the next key's certification, which a holder of the next key
// cannot forge (after a crash between the step and that write the records
// after the epoch's last checkpoint are pinned by it all the same).
//
// If the key file cannot be written, the old key stays and the step is
// retried a second later; if the log cannot, the certification is owed:
// the next write starts with it, and a crash leaves it in the key file,
// for the next start to write first.
func (l *Log) evolveSigned(atStop bool) {
	s := l.c.sign
	if s.certOwed == nil {
		if !atStop && (time.Now().Before(s.stepAfter) || l.stepHeld()) {
			return
		}
		at, err := l.stepTree()
		if err != nil {
			s.stepAfter = time.Now().Add(retryInterval)
			l.evolveFailedWith(err, "cannot read the Merkle tree the new key's certification pins; the key stays, and the step is retried")
			return
		}
		cur := s.key.copyKey() // s.key signs the epoch's last checkpoint
		next, cert, err := StepSignKeyFile(l.o.SignKey, cur, at)
		if err != nil {
			cur.Wipe()
			s.stepAfter = time.Now().Add(retryInterval)
			l.evolveFailedWith(err, "cannot step the signing key file; its key stays, and the step is retried")
			return
		}
		s.retiring, s.key, s.certOwed, s.heldSince = s.key, next, cert, time.Time{}
		l.o.Log.WithField("epoch", next.Epoch()).Debug("audit log: signing key stepped")
	}
	if err := l.flush(nil); err != nil {
		l.evolveFailedWith(err, "cannot log the new signing key's certification; nothing is signed by that key before it is")
	}
}

// stepQuiet is how long the log must have written without a failure
// before a signing key steps: records dated before the step must not land
// after it, in the next epoch (verify and check-proof would call them
// backdated), and callers that offer a record again after a failed write
// (the watcher, every 5s at most) do so within it. It is less than
// BackdateSlack.
const stepQuiet = 30 * time.Second

// stepHoldMax bounds the quiet hold: a log that fails a write more often
// than stepQuiet still steps its key this long after the step was due, so
// that the old key does not live on. A var for tests.
var stepHoldMax = 60 * time.Second

// stepHeld says the step waits for stepQuiet without a failed write, at
// most stepHoldMax after it was first held; a warning says so once.
func (l *Log) stepHeld() bool {
	c, s := &l.c, l.c.sign
	if time.Since(c.failedAt) >= stepQuiet {
		s.heldSince = time.Time{}
		return false
	}
	now := time.Now()
	if s.heldSince.IsZero() {
		s.heldSince = now
		l.o.Log.WithField("epoch", c.epoch).Warnf("audit log: the signing key's step is held until the log has written for %s without a failure, at most %s: a write failed %s ago", stepQuiet, stepHoldMax, now.Sub(c.failedAt).Round(time.Millisecond))
	}
	return now.Sub(s.heldSince) < stepHoldMax
}

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

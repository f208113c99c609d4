package audit

import (
	"fmt"
	"time"
)

// A daemon's run in the log: Start writes audit.restart (where the log
// ended, and whether the daemon before stopped cleanly) and, in a signed
// log, a checkpoint; a clean stop ends with audit.stop. Records the log
// owes (these, or a certification of a stepped key) start the next write.

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
		if c.sign.retiring != nil && !c.sign.lastWasCheckpoint {
			owed = append(owed, l.checkpointRecord(CheckpointEpoch)) // signed by the retiring key
		}
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

// stopRecords is a clean stop's end, after the records kept: a signed
// log's stop checkpoint and epoch end, then audit.stop.
func (l *Log) stopRecords() error {
	c := &l.c
	if s := c.sign; s != nil && c.f != nil {
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

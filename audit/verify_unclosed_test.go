package audit

import (
	"encoding/json"
	"reflect"
	"testing"
)

// rebuilt re-adds l's records, re-chained and every checkpoint re-signed
// with its epoch's key, keeping those keep says to (by seq of l), and
// calling more after each record kept (by its seq of l).
func rebuilt(t *testing.T, l *handLog, keep func(rec Record) bool, more func(out *handLog, seq uint64)) *handLog {
	t.Helper()
	out := l.again()
	for _, line := range l.lines {
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		seq := rec.Seq
		if keep != nil && !keep(rec) {
			continue
		}
		out.epoch = *rec.Epoch
		if rec.Event == Checkpoint {
			rec.Checkpoint = out.note(out.epoch)
		}
		rec.Hash, rec.Prev = "", ""
		out.add(rec)
		if more != nil {
			more(out, seq)
		}
	}
	return out
}

// The writer signs every epoch's last checkpoint with the epoch's own key,
// right before its audit.epoch: removing it (to rewrite the epoch's records
// with a later key) is refused, naming the audit.epoch and what follows it.
func TestVerifyEpochWithoutItsLastCheckpoint(t *testing.T) {
	l := standard(t) // epoch 0 ends: checkpoint seq 11, audit.epoch seq 12
	out := rebuilt(t, l, func(r Record) bool { return r.Seq != 11 }, nil)
	_, err := verifySigned(t, out, VerifyOptions{})
	wantSigned(t, err, Missing, "line 11 (seq 11): missing: the audit.epoch ending epoch 0 follows no checkpoint of epoch 0: hostpass writes an epoch's last checkpoint, signed by its key, right before its audit.epoch, so that whoever holds a later key cannot rewrite the epoch's records; only a crash leaves it out, and then the next record is audit.restart or audit.torn_tail, not endpoint.join: the checkpoint was removed")
}

// The hole the check closes: the holder of epoch 3's key rewrites a record
// of epoch 1, drops the checkpoints of epochs 1 and 2 that commit to it, and
// re-signs the rest with key 3 (the certifications are kept as they were).
func TestVerifyEarlierEpochCheckpointsDropped(t *testing.T) {
	l := newHandLog(t)
	l.checkpoint(CheckpointStart)
	l.fill(40, 5, 10)
	l.checkpoint(CheckpointStop)
	l.add(Record{Event: Stop, Outcome: OK})
	if _, err := verifySigned(t, l, VerifyOptions{}); err != nil {
		t.Fatalf("original: %v", err)
	}
	rewrote := false
	a := l.again()
	for _, line := range l.lines {
		var r Record
		json.Unmarshal(line, &r)
		e := *r.Epoch
		switch {
		case !rewrote && e == 1 && r.Event == EndpointJoin:
			r.EndpointID, rewrote = "forged", true
		case rewrote && (e == 1 || e == 2) && r.Event == Checkpoint:
			continue
		}
		a.epoch = e
		if r.Event == Checkpoint {
			r.Checkpoint = a.note(e)
		}
		r.Hash, r.Prev = "", ""
		a.add(r)
	}
	// Since certifications pin the tree at each step, the certification of
	// epoch 2's key catches it first: the log moved under it.
	_, err := verifySigned(t, a, VerifyOptions{})
	wantSigned(t, err, BadCert, "line 20 (seq 20): bad certification: the certification of epoch 2's key pins a tree of 20 records, but its audit.epoch is seq 20: the key steps before its certification is logged, so it pins at most the 19 records before it")
}

// A crash between the key file's step and the write of the epoch's last
// checkpoint: the next start logs the audit.torn_tail of the partial line
// the crash left (if any), the certification, then audit.restart. verify
// accepts it and names the records no checkpoint of their epoch covers:
// those after the tree the certification pins, signed by the retiring key.
func TestVerifyEpochEndedByACrash(t *testing.T) {
	for _, tc := range []struct {
		name     string
		torn     bool
		from, at uint64
	}{{"restart", false, 7, 7}, {"torn tail", true, 7, 8}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newHandLog(t)
			l.checkpoint(CheckpointStart) // seq 1
			l.join("a")
			l.join("b")
			l.checkpoint(CheckpointRecords) // seq 4
			l.join("c")
			l.join("d")
			l.crashStep(tc.torn) // pins 6 records; [torn tail,] audit.epoch, audit.restart
			l.checkpoint(CheckpointStart)
			l.join("e")
			l.checkpoint(CheckpointStop)
			l.add(Record{Event: Stop, Outcome: OK})
			sum, err := verifySigned(t, l, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := []UnclosedEpoch{{Epoch: 0, FromSeq: tc.from, Seq: tc.at, File: sum.UnclosedEpochs[0].File, Line: int(tc.at)}}
			if !reflect.DeepEqual(sum.UnclosedEpochs, want) {
				t.Errorf("unclosed epochs %+v, want %+v", sum.UnclosedEpochs, want)
			}
		})
	}
}

// A log from before the step was synchronous: the next start wrote the
// certification first, then audit.torn_tail. Still accepted.
func TestVerifyEpochEndedByACrashTornAfter(t *testing.T) {
	l := newHandLog(t)
	l.checkpoint(CheckpointStart)
	l.join("a")
	next, _, err := StepSignKey(l.keys[0], l.at())
	if err != nil {
		t.Fatal(err)
	}
	l.keys = append(l.keys, next)
	n := uint64(1)
	l.add(Record{Event: EpochEnd, Outcome: OK, NextEpoch: &n, KeyCert: string(next.Cert())})
	l.epoch = 1
	l.add(Record{Event: TornTail, Outcome: OK})
	l.checkpoint(CheckpointStart)
	l.add(Record{Event: Stop, Outcome: OK})
	sum, err := verifySigned(t, l, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.UnclosedEpochs) != 1 || sum.UnclosedEpochs[0].FromSeq != 3 || sum.UnclosedEpochs[0].Seq != 3 {
		t.Errorf("unclosed epochs %+v, want epoch 0's, seq 3-3", sum.UnclosedEpochs)
	}
}

// A hostile review's attack (forge.py): the holder of epoch 1's key drops
// epoch 0's last checkpoint, writes records in epoch 0 between the tree
// the step pinned and the audit.epoch, and fakes a crash with an
// audit.restart after it (re-signing the later checkpoints with key 1).
// The pinned tree is untouched, so only the rule on what lies between
// the pinned tree and the audit.epoch refuses it.
func TestVerifyRecordsForgedAfterThePinnedTree(t *testing.T) {
	l := standard(t) // epoch 0: step pins 10 records, checkpoint seq 11, audit.epoch seq 12
	for _, tc := range []struct {
		name   string
		forged int
		want   string
	}{
		{"one", 1, "line 12 (seq 12): inserted: the certification of epoch 1's key pins a tree of 10 records, but seq 11-11 lie between it and its audit.epoch (seq 12), and seq 11 is endpoint.join in epoch 0: hostpass steps the key right before epoch 0's last checkpoint and writes the audit.epoch next, so only that checkpoint, signed by epoch 0's key, and the audit.torn_tail of a crash during the step may lie there; no key of their time vouches for these records: whoever holds a later key wrote them"},
		{"five", 5, "line 16 (seq 16): inserted: the certification of epoch 1's key pins a tree of 10 records, but seq 11-15 lie between it and its audit.epoch (seq 16), 5 records: hostpass steps the key right before epoch 0's last checkpoint and writes the audit.epoch next, so only that checkpoint, signed by epoch 0's key, and the audit.torn_tail of a crash during the step may lie there; no key of their time vouches for these records: whoever holds a later key wrote them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The log ends in epoch 1, as forge.py's did: no later
			// certification pins the forged records.
			out := rebuilt(t, l, func(r Record) bool { return r.Seq != 11 && r.Seq <= 12 }, func(out *handLog, seq uint64) {
				switch seq {
				case 10:
					for i := 0; i < tc.forged; i++ {
						out.add(Record{Event: EndpointJoin, Outcome: OK, Driver: "hostpass", NetworkID: "net1", EndpointID: "forged"})
					}
				case 12:
					clean := false
					out.epoch = 1
					out.add(Record{Event: Restart, Outcome: OK, CleanStop: &clean})
					out.checkpoint(CheckpointStart)
					out.join("e")
					out.checkpoint(CheckpointStop)
					out.add(Record{Event: Stop, Outcome: OK})
				}
			})
			_, err := verifySigned(t, out, VerifyOptions{})
			wantSigned(t, err, Inserted, tc.want)
		})
	}
}

// A log that ends with an audit.epoch that follows no checkpoint of its
// epoch: the checkpoint was removed and the tail cut after it.
func TestVerifyEndsWithAnUnclosedEpoch(t *testing.T) {
	l := standard(t)
	out := rebuilt(t, l, func(r Record) bool { return r.Seq < 11 || r.Seq == 12 }, nil)
	_, err := verifySigned(t, out, VerifyOptions{})
	wantSigned(t, err, Missing, "line 11 (seq 11): missing: the log ends with the audit.epoch ending epoch 0, which follows no checkpoint of epoch 0: hostpass writes an epoch's last checkpoint, signed by its key, right before its audit.epoch; it was removed, or the log's tail was cut")
}

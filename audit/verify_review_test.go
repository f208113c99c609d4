package audit

import "testing"

// A collected checkpoint of S records is written as record seq S+1: a log
// cut to exactly S records lost that record, and is a cut tail, not a log
// the checkpoint is consistent with.
func TestVerifyCollectedCutAtItsOwnRecord(t *testing.T) {
	l := standard(t)
	n := len(l.lines) // seq n-1 is the stop checkpoint, of n-2 records
	cs := readCollected(t, writeFile(t, "coll.note", checkpointOf2(l, n-1)))
	cs[0].File = "coll.note"
	cut := *l
	cut.lines = l.lines[:n-2]
	_, err := verifySigned(t, &cut, VerifyOptions{Checkpoints: cs})
	wantSigned(t, err, CutTail, "coll.note: cut tail: collected checkpoint of 36 records (epoch 3), whose own record is seq 37, but the log holds 36: its last 1 records (seq 37 to 37) were cut off, or the files given are not the whole log")
}

// Whoever holds epoch 2's key rewrites the log from seq 31 on, without the
// step to epoch 3, and makes it longer than before: a collected checkpoint
// of epoch 3 then names a size the log holds, in an epoch it never reaches.
// That is rewritten history, not a cut tail.
func TestVerifyCollectedEpochGoneIsRewritten(t *testing.T) {
	l := standard(t)
	collected := readCollected(t, collectorFile(t, l))
	for i := range collected {
		collected[i].File = "collected.log"
	}
	out := l.again()
	for _, line := range l.lines[:30] { // epoch 2 from seq 23 to 30
		out.addLine(line)
	}
	out.epoch = 2
	out.fill(15, 5, 0)
	out.checkpoint(CheckpointStop)
	if _, err := verifySigned(t, out, VerifyOptions{}); err != nil {
		t.Fatalf("the attacker's log must verify alone: %v", err)
	}
	_, err := verifySigned(t, out, VerifyOptions{Checkpoints: collected})
	wantSigned(t, err, Rewritten, "collected.log line 37: rewritten: collected checkpoint signed by the key of epoch 3, of 35 records (unverified), but the log holds 49 records and its key chain ends at epoch 2: the log's first 36 records were rewritten with fewer epoch steps, so history before seq 37 is not what the checkpoint was signed over, or the checkpoint is not this log's (its signature cannot be checked without the certification the log lacks)")
}

// addLine appends a line of another log as it is (same chain so far).
func (l *handLog) addLine(line []byte) {
	l.tb.Helper()
	if err := l.tree.Append(line); err != nil {
		l.tb.Fatal(err)
	}
	l.seq++
	_, h, _ := splitHash(line)
	l.prev = h
	l.lines = append(l.lines, line)
}

package audit

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// handLog writes a signed log the way docs/proof.md lays it out, from the
// package's parts (encode, Tree, SignCheckpoint, StepSignKey), so that the
// verifier's tests do not depend on the writer. keys holds every epoch's
// key, so a test can play the attacker who holds them.
type handLog struct {
	tb     testing.TB
	origin string
	keys   []*SignKey // by epoch
	epoch  uint64
	tree   *Tree
	prev   string
	seq    uint64
	now    time.Time
	step   time.Duration // the time between records
	lines  [][]byte
	out    *bufio.Writer // if set, lines go here and are not kept
}

var signedStart = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newHandLog(tb testing.TB) *handLog {
	tb.Helper()
	origin, err := NewOrigin("node1")
	if err != nil {
		tb.Fatal(err)
	}
	k, err := generateSignKey(origin, 0, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &handLog{tb: tb, origin: origin, keys: []*SignKey{k}, tree: NewTree(), prev: Genesis, now: signedStart, step: time.Second}
}

// again starts a log with the same origin and keys: an attacker's rewrite.
func (l *handLog) again() *handLog {
	return &handLog{tb: l.tb, origin: l.origin, keys: l.keys, tree: NewTree(), prev: Genesis, now: signedStart, step: l.step}
}

// pub is FILE.pub: epoch 0's verifier.
func (l *handLog) pub() note.Verifier {
	v, err := note.NewVerifier(l.keys[0].VerifierKey())
	if err != nil {
		l.tb.Fatal(err)
	}
	return v
}

// add appends rec with the chain fields set, and returns its line.
func (l *handLog) add(rec Record) []byte {
	l.tb.Helper()
	l.seq++
	rec.Seq, rec.Prev, rec.Schema = l.seq, l.prev, Schema
	if rec.Time.IsZero() {
		rec.Time = l.now
	}
	l.now = rec.Time.Add(l.step)
	if rec.Epoch == nil {
		e := l.epoch
		rec.Epoch = &e
	}
	if rec.Host == "" {
		rec.Host = "node1"
	}
	line, err := encode(&rec, nil)
	if err != nil {
		l.tb.Fatal(err)
	}
	if err := l.tree.Append(line); err != nil {
		l.tb.Fatal(err)
	}
	l.prev = rec.Hash
	if l.out != nil {
		l.out.Write(line)
		l.out.WriteByte('\n')
		return line
	}
	l.lines = append(l.lines, line)
	return line
}

// join adds an endpoint.join record.
func (l *handLog) join(ep string) []byte {
	return l.add(Record{Event: EndpointJoin, Outcome: OK, Driver: "hostpass", NetworkID: "net1", EndpointID: ep})
}

// note signs a checkpoint of the tree as it is, with epoch e's key.
func (l *handLog) note(e uint64) string {
	l.tb.Helper()
	root, err := l.tree.Root()
	if err != nil {
		l.tb.Fatal(err)
	}
	msg, err := SignCheckpoint(l.keys[e], l.origin, l.tree.Size(), root)
	if err != nil {
		l.tb.Fatal(err)
	}
	return string(msg)
}

// checkpoint adds an audit.checkpoint record of every record before it.
func (l *handLog) checkpoint(reason string) []byte {
	return l.add(Record{Event: Checkpoint, Outcome: OK, Checkpoint: l.note(l.epoch), CheckpointReason: reason})
}

// at is what a key step pins now: the tree as it is, and the time.
func (l *handLog) at() CertTree {
	l.tb.Helper()
	root, err := l.tree.Root()
	if err != nil {
		l.tb.Fatal(err)
	}
	return CertTree{Size: l.tree.Size(), Root: root, Time: l.now}
}

// logTree is what a key step pins of the log at path, stepped at when.
func logTree(tb testing.TB, path string, when time.Time) CertTree {
	tb.Helper()
	t, err := BuildTree([]string{path})
	if err != nil {
		tb.Fatal(err)
	}
	root, err := t.Root()
	if err != nil {
		tb.Fatal(err)
	}
	return CertTree{Size: t.Size(), Root: root, Time: when}
}

// stepEpoch ends the epoch: its last checkpoint, then audit.epoch with the
// next key's certification.
func (l *handLog) stepEpoch() {
	l.tb.Helper()
	at := l.at() // the writer steps the key before the epoch's last checkpoint
	l.checkpoint(CheckpointEpoch)
	if len(l.keys) == int(l.epoch)+1 {
		next, _, err := StepSignKey(l.keys[l.epoch], at)
		if err != nil {
			l.tb.Fatal(err)
		}
		l.keys = append(l.keys, next)
	}
	next := l.epoch + 1
	l.add(Record{Event: EpochEnd, Outcome: OK, NextEpoch: &next, KeyCert: string(l.keys[next].Cert())})
	l.epoch = next
}

// crashStep: the key file stepped (its certification pins the tree now)
// and the daemon died before the epoch's last checkpoint; the next start
// logs, as the writer does, the audit.torn_tail of the line the crash cut
// (if torn), the certification, then audit.restart.
func (l *handLog) crashStep(torn bool) {
	l.tb.Helper()
	next, _, err := StepSignKey(l.keys[l.epoch], l.at())
	if err != nil {
		l.tb.Fatal(err)
	}
	l.keys = append(l.keys, next)
	if torn {
		l.add(Record{Event: TornTail, Outcome: OK})
	}
	n := l.epoch + 1
	l.add(Record{Event: EpochEnd, Outcome: OK, NextEpoch: &n, KeyCert: string(next.Cert())})
	l.epoch = n
	clean := false
	l.add(Record{Event: Restart, Outcome: OK, CleanStop: &clean})
}

// fill writes n joins, a checkpoint every cpEvery records and an epoch
// every epochEvery (0: none), as the daemon would.
func (l *handLog) fill(n, cpEvery, epochEvery int) {
	for i := 0; i < n; i++ {
		l.join("ep" + string(rune('a'+i%26)))
		if epochEvery > 0 && l.seq%uint64(epochEvery) == 0 {
			l.stepEpoch()
		} else if cpEvery > 0 && l.seq%uint64(cpEvery) == 0 {
			l.checkpoint(CheckpointRecords)
		}
	}
}

// write writes the log to a file in dir and returns its path.
func (l *handLog) write(dir string) string {
	l.tb.Helper()
	path := filepath.Join(dir, "audit.jsonl")
	var b bytes.Buffer
	for _, line := range l.lines {
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		l.tb.Fatal(err)
	}
	return path
}

// standard is a short signed log: a start checkpoint, 25 joins, a
// checkpoint every 5 records and an epoch every 10, and a clean stop.
func standard(tb testing.TB) *handLog {
	l := newHandLog(tb)
	l.checkpoint(CheckpointStart)
	l.fill(25, 5, 10)
	l.checkpoint(CheckpointStop)
	l.add(Record{Event: Stop, Outcome: OK})
	return l
}

// checkpointOf2 is the checkpoint in record seq of l, or "".
func checkpointOf2(l *handLog, seq int) string {
	c, _ := checkpointInLine(l.lines[seq-1])
	return string(c)
}

func writeBytes(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

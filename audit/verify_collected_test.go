package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// syslogLine is a collector's line for a record line, as rsyslog's file
// output writes an RFC 5424 message.
func syslogLine(line []byte, seq int) string {
	return fmt.Sprintf(`<134>1 2026-11-27T10:00:00Z node1 hostpass 4242 - [hostpass@32473 seq="%d" epoch="0"] %s`, seq, line)
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readCollected(t *testing.T, paths ...string) []CollectedCheckpoint {
	t.Helper()
	var out []CollectedCheckpoint
	for _, p := range paths {
		cs, err := ReadCheckpoints(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cs...)
	}
	return out
}

// collectorFile is what a collector received of l: every line, as syslog.
func collectorFile(t *testing.T, l *handLog) string {
	var b strings.Builder
	b.WriteString("<14>1 2026-11-27T09:59:59Z node1 sshd 77 - - unrelated message\n")
	for i, line := range l.lines {
		b.WriteString(syslogLine(line, i+1) + "\n")
	}
	return writeFile(t, "collected.log", b.String())
}

func TestVerifyCollectedOK(t *testing.T) {
	l := standard(t)
	var own bytes.Buffer
	for _, line := range l.lines[:12] {
		own.Write(line)
		own.WriteByte('\n')
	}
	files := []string{
		collectorFile(t, l),
		writeFile(t, "own.jsonl", own.String()),
		writeFile(t, "one.note", l.note(0)[:0]+checkpointOf(t, l, 11)),
	}
	cs := readCollected(t, files...)
	if len(cs) != 9+3+1 {
		t.Fatalf("%d checkpoints read, want 13", len(cs))
	}
	if cs[0].File != files[0] || cs[0].Line != 2 || cs[12].Line != 0 {
		t.Errorf("where: %+v %+v", cs[0], cs[12])
	}
	sum, err := verifySigned(t, l, VerifyOptions{Checkpoints: cs})
	if err != nil {
		t.Fatal(err)
	}
	// The own lines and the note repeat checkpoints the collector has.
	if sum.Collected != 9 {
		t.Errorf("collected %d, want the 9 distinct checkpoints", sum.Collected)
	}
}

// checkpointOf is the checkpoint in record seq of l.
func checkpointOf(t *testing.T, l *handLog, seq int) string {
	t.Helper()
	c, err := checkpointInLine(l.lines[seq-1])
	if err != nil || c == nil {
		t.Fatalf("seq %d: no checkpoint (%v)", seq, err)
	}
	return string(c)
}

func TestVerifyCollectedTamper(t *testing.T) {
	for _, tc := range []struct {
		name string
		// log is the host's log as the attacker left it; the collector
		// holds every checkpoint of standard.
		log  func(t *testing.T, l *handLog) *handLog
		kind ProblemKind
		want string
	}{{
		name: "tail cut inside epoch 2",
		log: func(t *testing.T, l *handLog) *handLog {
			cut := *l
			cut.lines = l.lines[:26]
			return &cut
		},
		kind: CutTail,
		want: "collected.log line 32: cut tail: collected checkpoint of 30 records (epoch 2), but the log holds 26: its last 4 records (seq 27 to 30) were cut off, or the files given are not the whole log",
	}, {
		name: "tail cut inside epoch 3",
		log: func(t *testing.T, l *handLog) *handLog {
			cut := *l
			cut.lines = l.lines[:34]
			return &cut
		},
		kind: CutTail,
		want: "collected.log line 37: cut tail: collected checkpoint of 35 records (epoch 3), but the log holds 34: its last 1 records (seq 35 to 35) were cut off, or the files given are not the whole log",
	}, {
		name: "tail cut at an epoch's end",
		log: func(t *testing.T, l *handLog) *handLog {
			cut := *l
			cut.lines = l.lines[:31]
			return &cut
		},
		kind: CutTail,
		want: "collected.log line 37: cut tail: collected checkpoint signed by the key of epoch 3, of 35 records (unverified), but the log holds 31 records and its key chain ends at epoch 2: the log's tail was cut (epoch 3 on is missing), or the checkpoint is not this log's (its signature cannot be checked without the certification the log lacks)",
	}, {
		name: "record rewritten and everything after re-signed with the live keys",
		log: func(t *testing.T, l *handLog) *handLog {
			return resign(t, l, 24, true, func(r *Record) { r.EndpointID = "forged" })
		},
		kind: Rewritten,
		want: "collected.log line 27: rewritten: collected checkpoint of 25 records (epoch 2) has root %s, but the log's first 25 records hash to %s: the log's checkpoint at seq 37 (36 records) does not extend it, so history before seq 26 was rewritten since the checkpoint was sent (run verify without --checkpoint to find where the chain was rebuilt)",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l := standard(t)
			collected := readCollected(t, collectorFile(t, l))
			for i := range collected {
				collected[i].File = "collected.log"
			}
			bad := tc.log(t, l)
			if _, err := verifySigned(t, bad, VerifyOptions{}); err != nil && tc.kind != CutTail {
				t.Fatalf("the attacker's log must verify alone: %v", err)
			}
			_, err := verifySigned(t, bad, VerifyOptions{Checkpoints: collected})
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fillHashes(t, err, want)
			}
			var p *Problem
			if errors.As(err, &p) && !strings.HasPrefix(p.Error(), want) {
				t.Errorf("problem reads\n%s\nwant it to start with\n%s", p.Error(), want)
			}
			if p == nil || p.Kind != tc.kind {
				t.Errorf("got %v, want kind %s", err, tc.kind)
			}
		})
	}
}

func TestVerifyCollectedRefused(t *testing.T) {
	l := standard(t)
	cp := checkpointOf(t, l, 6)
	forked := newHandLog(t) // another log's chain
	forked.checkpoint(CheckpointStart)
	for _, tc := range []struct{ name, text, want string }{{
		name: "huge note",
		text: "hostpass/" + strings.Repeat("x", 70<<10),
		want: "huge note: refused: it starts as a checkpoint note but is over 64 KiB, and a note is a few hundred bytes; " + checkpointForms,
	}, {
		name: "long line",
		text: "x\n" + strings.Repeat("y", 2<<20) + "\n",
		want: "long line line 2: refused: the line is longer than 1 MiB, and a checkpoint record is a few hundred bytes; " + checkpointForms,
	}, {
		name: "cut record",
		text: syslogLine(l.lines[5][:100], 6) + "\n",
		want: "cut record line 1: refused: the record in the line is not JSON (unexpected EOF): cut by the collector? hostpass sends checkpoints whole, and a collector must keep messages of at least 8 KiB",
	}, {
		name: "no record",
		text: "<13>1 - node1 hostpass 1 - - audit.checkpoint was \"audit.checkpoint\"\n",
		want: `no record line 1: refused: the line names audit.checkpoint but holds no record (none starts with {"time":); ` + checkpointForms,
	}, {
		name: "nothing",
		text: string(l.lines[1]) + "\n",
		want: "nothing: no checkpoint in it: " + checkpointForms,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.name)
			os.WriteFile(path, []byte(tc.text), 0o644)
			_, err := ReadCheckpoints(path)
			if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
				t.Errorf("got %v\nwant it to end with\n%s", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, note string
		kind       ProblemKind
		want       string
	}{{
		name: "size changed",
		note: strings.Replace(cp, "\n5\n", "\n4\n", 1),
		kind: BadCheckpoint,
		want: "collected checkpoint (epoch 0): checkpoint refused: the signature by " + l.keys[0].Name() + fmt.Sprintf("+%08x", l.keys[0].KeyHash()) + " does not verify: its origin, size or root hash was changed after signing",
	}, {
		name: "another log's",
		note: checkpointOf(t, forked, 1),
		kind: BadCheckpoint,
		want: "collected checkpoint: checkpoint refused: it is signed by " + forked.keys[0].Name() + fmt.Sprintf("+%08x", forked.keys[0].KeyHash()) + ", no key of this log's chain",
	}, {
		name: "signed by a later epoch's key, for an earlier tree",
		note: laterKeyNote(t, l),
		kind: BadCheckpoint,
		want: "collected checkpoint of 5 records is signed by the key of epoch 2, but the log's record seq 6, where that checkpoint is written, is in epoch 0: a checkpoint is signed by the key of the epoch it is written in, and whoever holds a later key can sign any tree",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifySigned(t, l, VerifyOptions{Checkpoints: []CollectedCheckpoint{{File: "c.note", Note: []byte(tc.note)}}})
			wantSigned(t, err, tc.kind, "c.note: "+string(tc.kind)+": "+tc.want)
		})
	}
}

// laterKeyNote signs the tree of l's first 5 records with epoch 2's key.
func laterKeyNote(t *testing.T, l *handLog) string {
	old := l.again()
	for _, line := range l.lines[:5] {
		old.tree.Append(line)
	}
	return old.note(2)
}

func TestVerifyHeartbeatGaps(t *testing.T) {
	l := newHandLog(t)
	l.step = time.Minute
	l.checkpoint(CheckpointStart) // 10:00
	l.join("a")                   // 10:01
	l.now = l.now.Add(6 * time.Minute)
	l.checkpoint(CheckpointHeartbeat) // 10:08: 8m after the last, a gap
	l.add(Record{Event: Stop, Outcome: OK})
	l.now = l.now.Add(time.Hour) // stopped: no gap
	clean := true
	l.add(Record{Event: Restart, Outcome: OK, CleanStop: &clean})
	l.checkpoint(CheckpointStart)
	l.now = l.now.Add(4 * time.Minute)
	l.checkpoint(CheckpointHeartbeat) // 5m after: within the slack
	l.now = l.now.Add(20 * time.Minute)
	l.add(Record{Event: Restart, Outcome: OK}) // a crash: no gap either
	l.checkpoint(CheckpointStart)
	sum, err := verifySigned(t, l, VerifyOptions{Heartbeat: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	want := []HeartbeatGap{{From: signedStart, To: signedStart.Add(8 * time.Minute), FromSeq: 1, ToSeq: 3, Line: 3, Heartbeat: 5 * time.Minute, Slack: 30 * time.Second}}
	if len(sum.HeartbeatGaps) != 1 {
		t.Fatalf("gaps %+v, want %+v", sum.HeartbeatGaps, want)
	}
	g := sum.HeartbeatGaps[0]
	g.File = ""
	if g != want[0] {
		t.Errorf("gap %+v, want %+v", g, want[0])
	}
	if sum.Restarts != 2 || sum.UncleanRestarts != 1 {
		t.Errorf("restarts %d unclean %d, want 2 and 1", sum.Restarts, sum.UncleanRestarts)
	}
}

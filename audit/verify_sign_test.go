package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func verifySigned(t *testing.T, l *handLog, o VerifyOptions) (Summary, error) {
	t.Helper()
	o.Pub = l.pub()
	return Verify([]string{l.write(t.TempDir())}, o)
}

// wantProblem checks err is a Problem of kind whose text is want.
func wantSigned(t *testing.T, err error, kind ProblemKind, want string) {
	t.Helper()
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("got %v, want a %s problem", err, kind)
	}
	if p.Kind != kind {
		t.Errorf("kind %q, want %q (%v)", p.Kind, kind, p)
	}
	if got := p.Error(); !strings.HasSuffix(got, want) {
		t.Errorf("problem reads\n%s\nwant it to end with\n%s", got, want)
	}
}

func TestVerifySignedOK(t *testing.T) {
	l := standard(t)
	sum, err := verifySigned(t, l, VerifyOptions{Heartbeat: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Seq 1 start checkpoint; joins; checkpoints at 6, 16, 26, 36;
	// epoch ends (checkpoint, audit.epoch) at 11-12, 21-22, 31-32; the stop
	// checkpoint at 37 and audit.stop at 38.
	if !sum.Signed || !sum.RootsChecked || sum.KeyCerts != 3 || sum.Sealed || sum.LastEpoch != 3 || sum.Checkpoints != 9 {
		t.Errorf("summary %+v", sum)
	}
	if sum.Records != len(l.lines) || sum.TreeSize != int64(len(l.lines)) || sum.LastCheckpointSize != int64(len(l.lines))-2 {
		t.Errorf("records %d tree %d last checkpoint %d, want %d lines", sum.Records, sum.TreeSize, sum.LastCheckpointSize, len(l.lines))
	}
	root, _ := l.tree.Root()
	if sum.TreeRoot != root {
		t.Errorf("tree root %s, want %s", sum.TreeRoot, root)
	}
	if len(sum.HeartbeatGaps) != 0 {
		t.Errorf("gaps %+v", sum.HeartbeatGaps)
	}
}

// rewrite returns the log with record seq's line replaced by edit's, and the
// chain rebuilt after it (checkpoints re-signed when resign), as an attacker
// would.
func resign(t *testing.T, l *handLog, seq uint64, resign bool, edit func(*Record)) *handLog {
	t.Helper()
	out := l.again()
	for i, line := range l.lines {
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		if uint64(i)+1 == seq {
			edit(&rec)
		}
		if rec.Event == Checkpoint && resign {
			rec.Checkpoint = out.note(*rec.Epoch)
		}
		out.epoch = *rec.Epoch
		out.add(rec)
	}
	return out
}

func TestVerifySignedTamper(t *testing.T) {
	otherEndpoint := func(r *Record) { r.EndpointID = "forged" }
	for _, tc := range []struct {
		name string
		log  func(t *testing.T) *handLog
		kind ProblemKind
		want string
	}{{
		name: "record rewritten, chain rebuilt, checkpoints kept",
		log:  func(t *testing.T) *handLog { return resign(t, standard(t), 3, false, otherEndpoint) },
		kind: BadCheckpoint,
		want: "line 6 (seq 6): bad checkpoint: the checkpoint of 5 records (epoch 0) has root %s, but the records before it hash to %s: a record before it was changed, and the chain rebuilt after it",
	}, {
		name: "checkpoint of epoch 0 signed by epoch 1's key",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			return resign(t, l, 6, false, func(r *Record) {
				cp := l.again()
				for _, line := range l.lines[:5] {
					cp.tree.Append(line)
				}
				r.Checkpoint = cp.note(1)
			})
		},
		kind: BadCheckpoint,
		want: "line 6 (seq 6): bad checkpoint: the checkpoint in epoch 0: it is signed by the key of epoch 1, not by epoch 0's, the epoch its record is in: a checkpoint is signed by the key of the epoch it is written in, and whoever holds a later key can sign any tree",
	}, {
		name: "checkpoint moved",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			return resign(t, l, 8, false, func(r *Record) {
				var six Record
				json.Unmarshal(l.lines[5], &six)
				*r = six
			})
		},
		kind: BadCheckpoint,
		want: "line 8 (seq 8): bad checkpoint: the checkpoint names a tree of 5 records, but its record is seq 8: a checkpoint covers every record before its own, 7; it was moved or edited",
	}, {
		name: "certification removed",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			return resign(t, l, 12, true, func(r *Record) { r.KeyCert = "" })
		},
		kind: Unsigned,
		want: "line 12 (seq 12): unsigned: the audit.epoch record ending epoch 0 has no key_cert: in a signed log it certifies epoch 1's key, and without it no later checkpoint can be checked; it was removed, or the log is sealed, not signed (verify a sealed log with --key)",
	}, {
		name: "certification of epoch 2 where epoch 1's belongs (a gap)",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			return resign(t, l, 12, true, func(r *Record) { r.KeyCert = string(l.keys[2].Cert()) })
		},
		kind: BadCert,
		want: "line 12 (seq 12): bad certification: key certification 1 certifies epoch 2 where epoch 1 comes next: a certification is missing, repeated or out of order; FILE.pub vouches for no key after this point, so no checkpoint after it can be trusted",
	}, {
		name: "certification signed by another key (a fork)",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			fork, err := generateSignKey(l.origin, 0, nil) // another epoch 0 key of the same name
			if err != nil {
				t.Fatal(err)
			}
			k, _, err := StepSignKey(fork)
			if err != nil {
				t.Fatal(err)
			}
			return resign(t, l, 12, true, func(r *Record) { r.KeyCert = string(k.Cert()) })
		},
		kind: BadCert,
		want: "line 12 (seq 12): bad certification: key certification of epoch 1 is not signed by %s, the key of epoch 0, but by %s: it is forged, or belongs to another chain; FILE.pub vouches for no key after this point, so no checkpoint after it can be trusted",
	}, {
		name: "certification changed",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			return resign(t, l, 12, true, func(r *Record) { r.KeyCert = strings.Replace(r.KeyCert, "key hostpass", "key  hostpass", 1) })
		},
		kind: BadCert,
		want: "line 12 (seq 12): bad certification: key certification of epoch 1: the signature by %s does not verify: the certification was changed after signing; FILE.pub vouches for no key after this point, so no checkpoint after it can be trusted",
	}, {
		name: "record without epoch",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			out := l.again()
			out.checkpoint(CheckpointStart)
			line := out.add(Record{Event: EndpointJoin, Outcome: OK})
			_ = line
			return rewriteNoEpoch(t, out, 2)
		},
		kind: Unsigned,
		want: "line 2 (seq 2): unsigned: the record has no epoch: every record of a signed log carries the epoch of the key in force; it was written by something other than hostpass's signing daemon (verify a log that is not signed without --pubkey)",
	}, {
		name: "no checkpoint",
		log: func(t *testing.T) *handLog {
			l := newHandLog(t)
			l.fill(3, 0, 0)
			return l
		},
		kind: Unsigned,
		want: "line 3 (seq 3): unsigned: no audit.checkpoint record in the log, so no signature vouches for any record: a signing daemon writes one at start, every --checkpoint-records records and at stop; the log is not signed, or its checkpoints were removed (verify a log that is not signed without --pubkey)",
	}, {
		name: "log started in epoch 1",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			out := l.again()
			out.epoch = 1
			out.checkpoint(CheckpointStart)
			out.fill(3, 0, 0)
			return out
		},
		kind: LateStart,
		want: "line 1 (seq 1): late start: the genesis record is in epoch 1, not epoch 0: a signed log starts under epoch 0's key, FILE.pub's, so this one was started with a later key, as whoever holds the daemon's key file can do; if you know from elsewhere (a syslog collector, an earlier verify) where the log starts, pass --start SEQ:HASH with that record's seq and hash",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.log(t)
			_, err := verifySigned(t, l, VerifyOptions{})
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fillHashes(t, err, want)
			}
			wantSigned(t, err, tc.kind, want)
		})
	}
}

// rewriteNoEpoch rewrites record seq of l without its epoch.
func rewriteNoEpoch(t *testing.T, l *handLog, seq uint64) *handLog {
	out := l.again()
	for i, line := range l.lines {
		var rec Record
		json.Unmarshal(line, &rec)
		if uint64(i)+1 == seq {
			// add sets a missing epoch: encode by hand.
			out.seq++
			rec.Seq, rec.Prev, rec.Epoch = out.seq, out.prev, nil
			line, _ := encode(&rec, nil)
			out.tree.Append(line)
			out.prev = rec.Hash
			out.lines = append(out.lines, line)
			continue
		}
		out.add(rec)
	}
	return out
}

// fillHashes fills the %s of want with what the problem names there (hashes
// and key names a test cannot know ahead), checking the rest matches.
func fillHashes(t *testing.T, err error, want string) string {
	t.Helper()
	if err == nil {
		return want
	}
	got := err.Error()
	parts := strings.Split(want, "%s")
	var args []any
	rest := got[strings.Index(got, parts[0])+len(parts[0]):]
	for _, p := range parts[1:] {
		end := len(rest)
		if p != "" {
			end = strings.Index(rest, p)
		}
		if end < 0 {
			return want
		}
		args = append(args, rest[:end])
		rest = rest[end+len(p):]
	}
	return fmt.Sprintf(want, args...)
}

func TestVerifySignedStart(t *testing.T) {
	l := standard(t)
	from := func(seq int) (*handLog, *Anchor) {
		cut := *l
		cut.lines = l.lines[seq-1:]
		var r Record
		json.Unmarshal(cut.lines[0], &r)
		return &cut, &Anchor{Seq: uint64(seq), Hash: r.Hash}
	}
	// In epoch 0: the chain and signatures check; the roots cannot.
	cut, start := from(4)
	sum, err := verifySigned(t, cut, VerifyOptions{Start: start})
	if err != nil || sum.RootsChecked || sum.Checkpoints != 8 || sum.KeyCerts != 3 || !sum.StartGiven {
		t.Errorf("start at seq 4: %+v, %v", sum, err)
	}
	_, err = verifySigned(t, cut, VerifyOptions{Start: start, Checkpoints: readCollected(t, collectorFile(t, l))})
	if want := "--checkpoint refused: the log starts at seq 4 (--start), and a checkpoint is proven against the tree of every record from seq 1; give the whole log"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	// In epoch 1: FILE.pub vouches for no key of it.
	cut, start = from(13)
	_, err = verifySigned(t, cut, VerifyOptions{Start: start})
	wantSigned(t, err, MissingStart, "line 1 (seq 13): missing start: the log starts in epoch 1: FILE.pub is epoch 0's key, and the certification of epoch 1 is in the audit.epoch record before seq 13, so no key of this log is vouched for; keep the files that hold them, or check the chain alone without --pubkey (--chain-only)")
	// Without --start, as for any log.
	_, err = verifySigned(t, cut, VerifyOptions{})
	wantSigned(t, err, MissingStart, "line 1 (seq 13): missing start: the log starts at seq 13, not at the genesis record: its oldest files are gone, or it was started elsewhere; if you know from elsewhere (a syslog collector, an earlier verify) where the log starts, pass --start SEQ:HASH with that record's seq and hash")
}

// A sealed log given to --pubkey: its hashes are seals.
func TestVerifySignedSealedLog(t *testing.T) {
	_, daemonKey := newKey(t)
	_, files := writeLog(t, 3, 0, daemonKey)
	_, err := Verify(files, VerifyOptions{Pub: newHandLog(t).pub()})
	wantSigned(t, err, Modified, "line 1 (seq 1): modified: the first record does not match its hash, a SHA-256 in a signed log: the record was changed, or the log is sealed (its hashes are HMAC seals: verify it with --key INITIAL-KEY-FILE, not --pubkey)")
}

package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A key certification pins the log's tree at the step (docs/proof.md,
// "Stepping an epoch"): the holder of a later key cannot rewrite what an
// earlier key signed, keeping the certifications, nor date a record
// before its key was made. The first two tests are a hostile review's
// reproductions; both passed before certifications pinned the tree.

// stripEpoch0 is the holder of key 1's rewrite of standard: every join of
// epoch 0 rewritten, every checkpoint of epoch 0 dropped (or, keep, made a
// forged join so that the records keep their seqs), the genuine
// certifications kept, the chain rebuilt and every later checkpoint
// re-signed. crash fakes a crash after the audit.epoch ending epoch 0 (an
// audit.restart), the shape of an epoch whose last checkpoint a crash
// lost.
func stripEpoch0(t *testing.T, keep, crash bool) *handLog {
	l := standard(t)
	out := l.again()
	for _, line := range l.lines {
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Event == Checkpoint && *rec.Epoch == 0 {
			if !keep {
				continue
			}
			rec = Record{Time: rec.Time, Event: EndpointJoin, Outcome: OK, Driver: "hostpass", NetworkID: "net1", Epoch: rec.Epoch}
		}
		if rec.Event == EndpointJoin && *rec.Epoch == 0 {
			rec.EndpointID = "forged"
		}
		if rec.Event == Checkpoint {
			rec.Checkpoint = out.note(*rec.Epoch)
		}
		out.epoch = *rec.Epoch
		end := out.add(rec)
		if crash && rec.Event == EpochEnd && *rec.Epoch == 0 {
			var last Record
			json.Unmarshal(end, &last)
			clean := false
			out.epoch = 1
			out.add(Record{Event: Restart, Outcome: OK, CleanStop: &clean,
				LogEnd: &LogEnd{Seq: last.Seq, Hash: last.Hash, Time: last.Time, Event: EpochEnd}})
		}
	}
	return out
}

func TestReviewStripOldEpochCheckpoints(t *testing.T) {
	// Epoch 0 of standard: a start checkpoint, 9 joins, a checkpoint;
	// the step pinned those 10 records, then came the epoch's last
	// checkpoint (seq 11) and its audit.epoch (seq 12).
	rewritten := "line 12 (seq 12): rewritten: the certification of epoch 1's key, signed by epoch 0's, pins the tree of the first 10 records with root %s, but the log's first 10 records hash to %s: records before seq 11 were rewritten after epoch 0's key stepped, by whoever held a later key"
	for _, tc := range []struct {
		name        string
		keep, crash bool
		kind        ProblemKind
		want        string
	}{
		{"checkpoints dropped", false, false, BadCert, "line 9 (seq 9): bad certification: the certification of epoch 1's key pins a tree of 10 records, but its audit.epoch is seq 9: the key steps before its certification is logged, so it pins at most the 8 records before it"},
		{"checkpoints made joins", true, false, Rewritten, rewritten},
		{"checkpoints made joins, crash shape faked", true, true, Rewritten, rewritten},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifySigned(t, stripEpoch0(t, tc.keep, tc.crash), VerifyOptions{})
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fillHashes(t, err, want)
			}
			wantSigned(t, err, tc.kind, want)
		})
	}
}

// backdated is standard with its stop cut, and a host.join and host.leave
// dated a year back appended in epoch 3 by the holder of key 3.
func backdated(t *testing.T) *handLog {
	l := standard(t)
	l.lines = l.lines[:len(l.lines)-2]
	f := resign(t, l, 0, true, func(*Record) {})
	f.epoch = 3
	old := signedStart.AddDate(-1, 0, 0)
	c := &Container{ID: "c0ffeec0ffeec0ffeec0ffeec0ffee00", Name: "miner"}
	f.add(Record{Time: old, Event: HostJoin, Outcome: OK, Container: c})
	f.add(Record{Time: old.Add(time.Hour), Event: HostLeave, Outcome: OK, Container: c})
	f.checkpoint(CheckpointRecords)
	return f
}

func TestReviewBackdatedBundle(t *testing.T) {
	f := backdated(t)
	path := f.write(t.TempDir())
	// verify reports them, for a clock stepped back writes them too (see
	// TestVerifyClockSteppedBack); check-proof refuses them.
	sum, err := Verify([]string{path}, VerifyOptions{Pub: f.pub()})
	if err != nil {
		t.Fatal(err)
	}
	old := signedStart.AddDate(-1, 0, 0)
	made := signedStart.Add(30 * time.Second)
	want := []Backdated{{File: path, Line: 37, Seq: 37, Epoch: 3, Time: old, KeyMade: made}, {File: path, Line: 38, Seq: 38, Epoch: 3, Time: old.Add(time.Hour), KeyMade: made},
		{File: path, Line: 39, Seq: 39, Epoch: 3, Time: old.Add(time.Hour + time.Second), KeyMade: made}} // and its checkpoint
	if !reflect.DeepEqual(sum.Backdated, want) {
		t.Errorf("backdated %+v, want %+v", sum.Backdated, want)
	}
	b, err := Prove([]string{path}, ProveQuery{Container: "miner"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := CheckBundle(b, f.pub())
	if err == nil {
		t.Fatalf("check-proof attests a time before epoch 3 existed: %v", p.Sessions())
	}
	wantErr(t, err, "bundle refused: record seq 37 is dated 2025-11-27T10:00:00Z, but it is proven under a checkpoint of epoch 3, whose key was made at 2026-11-27T10:00:30Z (its certification, signed by epoch 2's key, says so): whoever holds epoch 3's key can date a record as they like, and a record is written at most 5m0s after its time; it is backdated")
}

// A record BackdateSlack before its key's step is taken (records kept in
// memory during an outage carry the time they happened); one a second
// more is not.
func TestBackdateSlack(t *testing.T) {
	for _, tc := range []struct {
		before time.Duration
		ok     bool
	}{{BackdateSlack, true}, {BackdateSlack + time.Second, false}} {
		l := standard(t)
		l.lines = l.lines[:len(l.lines)-2]
		f := resign(t, l, 0, true, func(*Record) {})
		f.epoch = 3
		f.add(Record{Time: signedStart.Add(30*time.Second - tc.before), Event: EndpointJoin, Outcome: OK, EndpointID: "late"})
		f.checkpoint(CheckpointRecords)
		sum, err := verifySigned(t, f, VerifyOptions{})
		if err != nil || (len(sum.Backdated) == 0) != tc.ok {
			t.Errorf("a record %s before its key's step: verify says %v, backdated %+v", tc.before, err, sum.Backdated)
		}
	}
}

// check-proof refuses a record proven under a checkpoint of epoch N that
// epoch N's certification pinned: key N can sign any tree, so its
// checkpoint vouches only for what came after the step.
func TestCheckBundleRecordPinnedByCert(t *testing.T) {
	// The holder of key 1 rewrites seq 3 and labels it epoch 1.
	l := resign(t, standard(t), 3, true, func(r *Record) {
		e := uint64(1)
		r.EndpointID, r.Epoch = "forged", &e
	})
	path := l.write(t.TempDir())
	b, err := Prove([]string{path}, ProveQuery{Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Prove seq 3 under epoch 1's checkpoint at seq 16 (15 records),
	// as the holder of key 1 would after rewriting it.
	tree, err := BuildTree([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	proof, err := tree.ProveRecord(15, 2)
	if err != nil {
		t.Fatal(err)
	}
	b.Checkpoints = []BundleCheckpoint{{Seq: 16, Note: checkpointOf2(l, 16)}}
	b.KeyCerts = b.KeyCerts[:0]
	b.KeyCerts = append(b.KeyCerts, certOf(t, l, 12))
	b.Records[0].Checkpoint, b.Records[0].Proof = 0, nil
	for _, h := range proof {
		b.Records[0].Proof = append(b.Records[0].Proof, h.String())
	}
	_, err = CheckBundle(b, l.pub())
	wantErr(t, err, "bundle refused: record seq 3 is proven under a checkpoint of epoch 1, but epoch 1's key certification pins the tree of the first 10 records, signed by epoch 0's key: whoever holds epoch 1's key can only add records after seq 10, so that key's checkpoint vouches for no earlier record; ask for the bundle hostpass audit prove writes, each record under the first checkpoint after it")
}

// certOf is the key_cert of the audit.epoch record at seq.
func certOf(t *testing.T, l *handLog, seq int) string {
	var rec Record
	if err := json.Unmarshal(l.lines[seq-1], &rec); err != nil || rec.Event != EpochEnd {
		t.Fatalf("seq %d is not an audit.epoch: %v", seq, err)
	}
	return rec.KeyCert
}

// recert re-signs standard's certification of epoch 1 (audit.epoch seq 12)
// with epoch 0's key over text edited by edit, as a forger holding key 0
// would not, but a bug could, and rebuilds the log after it.
func recert(t *testing.T, edit func(text string) string) *handLog {
	l := standard(t)
	return resign(t, l, 12, true, func(r *Record) {
		_, err := note.Open([]byte(r.KeyCert), nil)
		text := edit(err.(*note.UnverifiedNoteError).Note.Text)
		cert, err := note.Sign(&note.Note{Text: text}, l.keys[0])
		if err != nil {
			t.Fatal(err)
		}
		r.KeyCert = string(cert)
	})
}

func TestVerifyRefusesDamagedCertTree(t *testing.T) {
	certLine := func(old, new string) func(string) string {
		return func(text string) string {
			i := strings.Index(text, old)
			j := i + strings.Index(text[i:], "\n")
			return text[:i] + new + text[j:]
		}
	}
	notCert := `line 12 (seq 12): bad certification: key certification of epoch 1: its text is not a hostpass key certification: one is the lines "hostpass key certification v2", "origin <origin>", "epoch <N>", "key <verifier key>", "tree <records> <root hash, base64>", "time <RFC 3339 UTC>"; FILE.pub vouches for no key after this point, so no checkpoint after it can be trusted`
	for _, tc := range []struct {
		name string
		log  func(t *testing.T) *handLog
		kind ProblemKind
		want string
	}{{
		name: "tree line changed after signing",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			return resign(t, l, 12, true, func(r *Record) {
				r.KeyCert = strings.Replace(r.KeyCert, "\ntree 10 ", "\ntree 9 ", 1)
			})
		},
		kind: BadCert,
		want: "line 12 (seq 12): bad certification: key certification of epoch 1: the signature by %s/e0 does not verify: the certification was changed after signing; FILE.pub vouches for no key after this point, so no checkpoint after it can be trusted",
	}, {
		name: "time line changed after signing",
		log: func(t *testing.T) *handLog {
			l := standard(t)
			return resign(t, l, 12, true, func(r *Record) {
				r.KeyCert = strings.Replace(r.KeyCert, "\ntime 2026-11-27T10:00:10Z", "\ntime 2026-11-27T10:00:11Z", 1)
			})
		},
		kind: BadCert,
		want: "line 12 (seq 12): bad certification: key certification of epoch 1: the signature by %s/e0 does not verify: the certification was changed after signing; FILE.pub vouches for no key after this point, so no checkpoint after it can be trusted",
	}, {
		name: "tree line without a root",
		log:  func(t *testing.T) *handLog { return recert(t, certLine("tree ", "tree 10")) },
		kind: BadCert, want: notCert,
	}, {
		name: "tree root not base64",
		log:  func(t *testing.T) *handLog { return recert(t, certLine("tree ", "tree 10 not-a-hash")) },
		kind: BadCert, want: notCert,
	}, {
		name: "tree size negative",
		log: func(t *testing.T) *handLog {
			return recert(t, func(s string) string { return strings.Replace(s, "\ntree 10 ", "\ntree -1 ", 1) })
		},
		kind: BadCert, want: notCert,
	}, {
		name: "time not RFC 3339",
		log:  func(t *testing.T) *handLog { return recert(t, certLine("time ", "time yesterday")) },
		kind: BadCert, want: notCert,
	}, {
		name: "time line missing",
		log:  func(t *testing.T) *handLog { return recert(t, certLine("time ", "")) },
		kind: BadCert, want: notCert,
	}, {
		name: "tree past the audit.epoch",
		log: func(t *testing.T) *handLog {
			return recert(t, func(s string) string { return strings.Replace(s, "\ntree 10 ", "\ntree 12 ", 1) })
		},
		kind: BadCert,
		want: "line 12 (seq 12): bad certification: the certification of epoch 1's key pins a tree of 12 records, but its audit.epoch is seq 12: the key steps before its certification is logged, so it pins at most the 11 records before it",
	}, {
		name: "tree of another size, root kept",
		log: func(t *testing.T) *handLog {
			return recert(t, func(s string) string { return strings.Replace(s, "\ntree 10 ", "\ntree 11 ", 1) })
		},
		kind: Rewritten,
		want: "line 12 (seq 12): rewritten: the certification of epoch 1's key, signed by epoch 0's, pins the tree of the first 11 records with root %s, but the log's first 11 records hash to %s: records before seq 12 were rewritten after epoch 0's key stepped, by whoever held a later key",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.log(t)
			_, err := verifySigned(t, l, VerifyOptions{})
			want := tc.want
			if strings.Contains(want, "%s/e0") {
				want = fmt.Sprintf(want, l.origin)
			} else if strings.Contains(want, "%s") {
				want = fillHashes(t, err, want)
			}
			wantSigned(t, err, tc.kind, want)
		})
	}
}

// A certification pinning fewer records than the one before it is refused
// by the key chain's walk (check-proof), and by verify.
func TestKeyChainRefusesShrinkingTree(t *testing.T) {
	l := standard(t)
	k, _, err := StepSignKey(l.keys[1], CertTree{Size: 5, Time: signedStart})
	if err != nil {
		t.Fatal(err)
	}
	certs := [][]byte{[]byte(certOf(t, l, 12)), k.Cert()}
	_, err = VerifyKeyChain(l.pub(), certs)
	wantErr(t, err, "key certification of epoch 2 pins a tree of 5 records, fewer than epoch 1's certification pins, 10: a log only grows, so one of them pins rewritten history")
}

// Under --start the verifier has no tree, so a certification's tree is
// not checked: the summary counts them.
func TestCertTreesUncheckedAfterStart(t *testing.T) {
	l := standard(t)
	var r4 Record
	json.Unmarshal(l.lines[3], &r4)
	l.lines = l.lines[3:]
	sum, err := verifySigned(t, l, VerifyOptions{Start: &Anchor{Seq: 4, Hash: r4.Hash}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.CertTreesUnchecked != 3 || sum.RootsChecked {
		t.Errorf("summary %+v: want 3 certifications' trees unchecked", sum)
	}
}

// BenchmarkStepTree is what pinning the tree costs a key step: the root of
// a log of 100,000 records from its tree store, cold (every stored hash
// read with a pread) and through the committer's cache; against the step
// itself (BenchmarkStepSignKeyFile) in the same run.
func BenchmarkStepTree(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	l := newHandLog(b)
	l.out = bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < 100_000; i++ {
		l.join(fmt.Sprintf("%064x", i))
	}
	l.out.Flush()
	f.Close()
	t, err := OpenTree(path)
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	store := t.hashes
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			t.hashes = store
			if _, err := t.Root(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		t.hashes = &cachedHashes{hashStore: store, m: map[int64]tlog.Hash{}}
		for i := 0; i < b.N; i++ {
			if _, err := t.Root(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A genuine log whose clock stepped back more than BackdateSlack after a
// key step: verify passes it and names each such record (the CLI prints
// BACKDATED: lines); check-proof refuses a bundle of them, since a bundle's
// point is its claim about time.
func TestVerifyClockSteppedBack(t *testing.T) {
	l := newHandLog(t)
	l.checkpoint(CheckpointStart)
	l.fill(4, 0, 0)
	l.stepEpoch() // the key of epoch 1 made at seq 5's time: checkpoint seq 6, audit.epoch seq 7
	made := l.lines[5]
	var cp Record
	json.Unmarshal(made, &cp)
	l.now = cp.Time.Add(-10 * time.Minute) // the clock steps back
	c := &Container{ID: "c0ffeec0ffeec0ffeec0ffeec0ffee00", Name: "web"}
	l.add(Record{Event: HostJoin, Outcome: OK, Container: c}) // seq 8
	l.add(Record{Event: HostLeave, Outcome: OK, Container: c})
	l.checkpoint(CheckpointStop)
	l.add(Record{Event: Stop, Outcome: OK})
	path := l.write(t.TempDir())
	sum, err := Verify([]string{path}, VerifyOptions{Pub: l.pub()})
	if err != nil {
		t.Fatalf("a genuine log with its clock stepped back: %v", err)
	}
	if len(sum.Backdated) != 4 || sum.Backdated[0].Seq != 8 || sum.Backdated[0].Epoch != 1 || !sum.Backdated[0].Time.Equal(l.now.Add(-4*time.Second)) {
		t.Errorf("backdated %+v, want seq 8-11 of epoch 1", sum.Backdated)
	}
	b, err := Prove([]string{path}, ProveQuery{Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckBundle(b, l.pub()); err == nil || !strings.HasSuffix(err.Error(), "; it is backdated") {
		t.Errorf("check-proof of a backdated record: %v, want it refused as backdated", err)
	}
}

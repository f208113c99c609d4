package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// signedLog makes a signing key file (epoch 0) and returns the log's path
// and the key file's.
func signedLog(t *testing.T) (path, key string) {
	t.Helper()
	dir := t.TempDir()
	key = filepath.Join(dir, "sign.key")
	if _, err := NewSignKeyFile(key, "web-1"); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "audit.jsonl"), key
}

func openSigned(t *testing.T, path, key string, o Options) *Log {
	t.Helper()
	o.SignKey = key
	l, err := OpenWith(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func signedJoins(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSigned checks a signed log with FILE.pub alone, as an auditor
// would: the key certifications of its audit.epoch records from epoch 0's
// key on, every record in the epoch its records say, and every checkpoint
// opened with its epoch's key, its size the records before it and its root
// the tree of those records. It returns the records.
func checkSigned(t *testing.T, path, key string) []Record {
	t.Helper()
	pub, err := ReadSignPub(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	origin := strings.TrimSuffix(pub.Name(), "/e0")
	recs := readRecords(t, path)
	var certs [][]byte
	for _, r := range recs {
		if r.Event == EpochEnd {
			certs = append(certs, []byte(r.KeyCert))
		}
	}
	keys, err := VerifyKeyChain(pub, certs)
	if err != nil {
		t.Fatalf("key chain: %v", err)
	}
	tree, err := BuildTree([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	epoch := uint64(0)
	var pinned CertTree
	for _, r := range recs {
		if r.Epoch == nil || *r.Epoch != epoch {
			t.Fatalf("record seq %d (%s) has epoch %v, want %d", r.Seq, r.Event, r.Epoch, epoch)
		}
		if r.Event == EpochEnd {
			epoch = *r.NextEpoch
			checkCertTree(t, tree, r, &pinned)
		}
		if r.Event != Checkpoint {
			continue
		}
		size, root, err := OpenCheckpoint([]byte(r.Checkpoint), note.VerifierList(keys[*r.Epoch]), origin)
		if err != nil {
			t.Fatalf("checkpoint seq %d (%s): %v", r.Seq, r.CheckpointReason, err)
		}
		want, _ := tree.RootAt(int64(r.Seq - 1))
		if size != int64(r.Seq-1) || root != want {
			t.Fatalf("checkpoint seq %d: size %d root %v, want %d %v", r.Seq, size, root, r.Seq-1, want)
		}
	}
	return recs
}

// checkCertTree checks the tree an audit.epoch's certification pins: the
// log's own at a size between the previous certification's and the
// audit.epoch's seq-1, stepped no later than the audit.epoch's time.
func checkCertTree(t *testing.T, tree *Tree, r Record, prev *CertTree) {
	t.Helper()
	_, err := note.Open([]byte(r.KeyCert), nil)
	var un *note.UnverifiedNoteError
	if !errors.As(err, &un) {
		t.Fatalf("audit.epoch seq %d: its key_cert is not a note: %v", r.Seq, err)
	}
	_, _, _, at, err := parseCertText(un.Note.Text)
	if err != nil {
		t.Fatalf("audit.epoch seq %d: %v", r.Seq, err)
	}
	want, err := tree.RootAt(at.Size)
	if err != nil || at.Root != want || at.Size > int64(r.Seq)-1 || at.Size < prev.Size || at.Time.After(r.Time) || at.Time.Before(prev.Time) {
		t.Fatalf("audit.epoch seq %d (%v) pins tree %d %v at %v, want the log's (%v) at a size from %d to %d, stepped after %v (%v)", r.Seq, r.Time, at.Size, at.Root, at.Time, want, prev.Size, r.Seq-1, prev.Time, err)
	}
	*prev = at
}

func eventText(recs []Record) string {
	var s []string
	for _, r := range recs {
		e := string(r.Event)
		if r.Event == Checkpoint {
			e += "(" + r.CheckpointReason + ")"
		}
		s = append(s, e)
	}
	return strings.Join(s, " ")
}

func wantEvents(t *testing.T, recs []Record, want string) {
	t.Helper()
	if got := eventText(recs); got != want {
		t.Fatalf("records\n got: %s\nwant: %s", got, want)
	}
}

// A signed run: a start checkpoint, one every CheckpointRecords records,
// and at a clean stop the stop checkpoint, the epoch's end with the next
// key's certification, and audit.stop last. A second run starts with
// audit.restart naming the first run's end as clean, in epoch 1.
func TestSignedLogCheckpointsAndStartStop(t *testing.T) {
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{CheckpointRecords: 3})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	signedJoins(t, l, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs := checkSigned(t, path, key)
	wantEvents(t, recs, "audit.checkpoint(start) endpoint.join endpoint.join endpoint.join audit.checkpoint(records) endpoint.join audit.checkpoint(stop) audit.epoch audit.stop")
	if k, err := ReadSignKeyFile(key); err != nil || k.Epoch() != 1 {
		t.Fatalf("key file after a clean stop: %v, %v; want epoch 1", k, err)
	}
	if _, err := os.Stat(TreeStorePath(path)); err != nil {
		t.Errorf("no tree store beside the log: %v", err)
	}

	l = openSigned(t, path, key, Options{})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	signedJoins(t, l, 1)
	l.Close()
	recs = checkSigned(t, path, key)
	wantEvents(t, recs[9:], "audit.restart audit.checkpoint(start) endpoint.join audit.checkpoint(stop) audit.epoch audit.stop")
	r := recs[9]
	end := recs[8]
	if *r.CleanStop != true || r.LogEnd.Seq != 9 || r.LogEnd.Hash != end.Hash || r.LogEnd.Event != Stop || !r.LogEnd.Time.Equal(end.Time) {
		t.Errorf("audit.restart: clean_stop %v, log_end %+v; want true, seq 9 %s audit.stop at %s", *r.CleanStop, *r.LogEnd, end.Hash, end.Time)
	}
}

// A plain log gets audit.restart and audit.stop too; without Start (a
// library user), neither.
func TestPlainLogRestartAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	signedJoins(t, l, 2)
	l.Close()
	wantSeqs(t, readRecords(t, path), EndpointJoin, EndpointJoin, Stop)

	// A crash: the last record is not audit.stop.
	l = Open(path, nil)
	signedJoins(t, l, 1) // no Start: no audit.stop at Close
	l.Close()
	l = Open(path, nil)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs := readRecords(t, path)
	wantSeqs(t, recs, EndpointJoin, EndpointJoin, Stop, EndpointJoin, Restart, Stop)
	if r := recs[4]; *r.CleanStop || r.LogEnd.Seq != 4 || r.LogEnd.Event != EndpointJoin || r.LogEnd.Hash != recs[3].Hash {
		t.Errorf("audit.restart after a crash: clean_stop %v, log_end %+v; want false, seq 4 endpoint.join", *r.CleanStop, *r.LogEnd)
	}
	if r := recs[4]; r.Epoch != nil {
		t.Errorf("a plain log's audit.restart has epoch %d", *r.Epoch)
	}
}

// Interval and heartbeat checkpoints: records written get one after
// CheckpointInterval; an idle log gets one every Heartbeat.
func TestCheckpointIntervalAndHeartbeat(t *testing.T) {
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{CheckpointInterval: 50 * time.Millisecond, Heartbeat: 150 * time.Millisecond, EpochInterval: time.Hour})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	signedJoins(t, l, 1)
	time.Sleep(400 * time.Millisecond)
	l.Close()
	recs := checkSigned(t, path, key)
	got := eventText(recs)
	if !strings.HasPrefix(got, "audit.checkpoint(start) endpoint.join audit.checkpoint(interval) audit.checkpoint(heartbeat)") {
		t.Fatalf("records: %s; want start, a join, an interval checkpoint, then heartbeats", got)
	}
}

// The epoch ends after EpochRecords: the checkpoint of the epoch under its
// key, the audit.epoch with the next key's certification, and records
// after it in the next epoch.
func TestSignedEpochEnd(t *testing.T) {
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{EpochRecords: 3})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	signedJoins(t, l, 2)
	waitEpochLogged(t, path, 1)
	signedJoins(t, l, 1)
	l.Close()
	recs := checkSigned(t, path, key)
	wantEvents(t, recs, "audit.checkpoint(start) endpoint.join endpoint.join audit.checkpoint(epoch) audit.epoch endpoint.join audit.checkpoint(stop) audit.epoch audit.stop")
}

// The key steps on the committer, callers waiting: under 64 concurrent
// callers and an epoch every 5 records, nothing lies between the tree an
// audit.epoch's certification pins and the audit.epoch but the epoch's last
// checkpoint, signed by the retiring key (and nothing at all when the last
// record in the tree is a checkpoint). A record there would be covered by
// the retiring key's last checkpoint alone, which whoever holds the next
// key can drop (faking a crash) and rewrite the record.
func TestNoRecordBetweenTheCertTreeAndTheEpoch(t *testing.T) {
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{EpochRecords: 5})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	l.Close()
	recs := checkSigned(t, path, key)
	if n := len(filterEvents(recs, EndpointJoin)); n != 64*20 {
		t.Errorf("%d joins, want %d", n, 64*20)
	}
	epochs := 0
	for _, r := range recs {
		if r.Event != EpochEnd {
			continue
		}
		epochs++
		at := certTreeOf(t, r)
		between := recs[at.Size : r.Seq-1] // seqs at.Size+1 to r.Seq-1
		last := recs[at.Size-1]            // the last record the tree holds
		switch {
		case len(between) == 0 && last.Event == Checkpoint:
		case len(between) == 1 && between[0].Event == Checkpoint && between[0].CheckpointReason == CheckpointEpoch && last.Event != Checkpoint:
		default:
			t.Errorf("audit.epoch seq %d pins the tree of %d records (the last %s); %d records between them, the last %s", r.Seq, at.Size, last.Event, len(between), eventText(between[max(0, len(between)-2):]))
		}
	}
	if epochs < 10 {
		t.Errorf("%d epochs ended in %d records, want many", epochs, len(recs))
	}
}

// certTreeOf is the tree an audit.epoch's certification pins.
func certTreeOf(t *testing.T, r Record) CertTree {
	t.Helper()
	_, err := note.Open([]byte(r.KeyCert), nil)
	var un *note.UnverifiedNoteError
	if !errors.As(err, &un) {
		t.Fatalf("audit.epoch seq %d: its key_cert is not a note: %v", r.Seq, err)
	}
	_, _, _, at, err := parseCertText(un.Note.Text)
	if err != nil {
		t.Fatalf("audit.epoch seq %d: %v", r.Seq, err)
	}
	return at
}

// A log whose writes fail more often than stepQuiet holds the key's step
// at most stepHoldMax after it was due, with a warning: then the key
// steps anyway, so that the old key does not live on.
func TestStepHeldAtMostStepHoldMax(t *testing.T) {
	defer func(d time.Duration) { stepHoldMax = d }(stepHoldMax)
	stepHoldMax = 2 * time.Second
	bad := failWritesHolding(t)
	bad.Store(`"endpoint_id":"refused"`)
	path, key := signedLog(t)
	logger, hook := logtest.NewNullLogger()
	l := openSigned(t, path, key, Options{EpochRecords: 2, Log: logrus.NewEntry(logger)})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		if err := l.Append(Record{Event: EndpointJoin, Outcome: OK, EndpointID: "refused"}); err == nil {
			t.Fatal("a refused write succeeded")
		}
		signedJoins(t, l, 1) // the epoch is due; the step is held, or done
		if k, err := ReadSignKeyFile(key); err == nil && k.Epoch() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key did not step in 10s of writes failing every 300ms (stepHoldMax %s)", stepHoldMax)
		}
	}
	held := 0
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "the signing key's step is held until the log has written for 30s without a failure, at most 2s") {
			held++
		}
	}
	if held == 0 {
		t.Error("no warning that the step is held")
	}
	l.Close()
	checkSigned(t, path, key)
}

func filterEvents(recs []Record, e Event) []Record {
	var out []Record
	for _, r := range recs {
		if r.Event == e {
			out = append(out, r)
		}
	}
	return out
}

// waitEpochLogged waits until the log holds the audit.epoch that starts
// epoch: the key steps after a write, or on the retry tick.
func waitEpochLogged(t *testing.T, path string, epoch uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, r := range readRecords(t, path) {
			if r.Event == EpochEnd && *r.NextEpoch == epoch {
				return
			}
		}
	}
	t.Fatalf("no audit.epoch starting epoch %d", epoch)
}

// waitKeyStepped waits until the key file holds epoch's key, and the
// committer has taken it (its retry tick tried the audit.epoch).
func waitKeyStepped(t *testing.T, key string, epoch uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if k, err := ReadSignKeyFile(key); err == nil && k.Epoch() == epoch {
			time.Sleep(1500 * time.Millisecond)
			return
		}
	}
	t.Fatalf("the key file did not step to epoch %d", epoch)
}

// A crash between stepping the key file and logging the certification:
// the key file holds epoch 1's key and its certification, the log ends in
// epoch 0. The next start writes the audit.epoch with the key file's
// certification first, and the log checks under FILE.pub.
func TestStartLogsACertificationTheKeyFileHolds(t *testing.T) {
	f := injectFaults(t)
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{})
	l.Start()
	signedJoins(t, l, 2)
	// What the daemon holds at the crash: write nothing more, step the
	// key file as evolveSigned would, and never log it.
	k, err := ReadSignKeyFile(key)
	if err != nil {
		t.Fatal(err)
	}
	next, cert, err := StepSignKeyFile(key, k, logTree(t, path, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	next.Wipe()
	abandon(t, l, f)

	l = openSigned(t, path, key, Options{})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs := checkSigned(t, path, key)
	wantEvents(t, recs, "audit.checkpoint(start) endpoint.join endpoint.join audit.epoch audit.restart audit.checkpoint(start) audit.checkpoint(stop) audit.epoch audit.stop")
	if recs[3].KeyCert != string(cert) {
		t.Errorf("the recovered audit.epoch carries\n%s\nwant the key file's certification\n%s", recs[3].KeyCert, cert)
	}
	if r := recs[4]; *r.CleanStop || r.LogEnd.Seq != 3 {
		t.Errorf("audit.restart: clean_stop %v, log_end seq %d; want false, 3", *r.CleanStop, r.LogEnd.Seq)
	}
}

// abandon stops a log without the clean stop's records, leaving the file
// as a kill -9 would: every write fails while it closes.
func abandon(t *testing.T, l *Log, f *faults) {
	t.Helper()
	f.set(syscall.EIO, nil, nil)
	if err := l.Close(); err == nil {
		t.Fatal("a close whose writes all fail reported no error")
	}
	f.set(nil, nil, nil)
}

// A key file two epochs ahead of the log, or behind it, is not this log's.
func TestSignedLogRefusesAKeyFileOfAnotherEpoch(t *testing.T) {
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{})
	signedJoins(t, l, 1)
	l.Close() // epoch 0 ends: the key file is at 1, the log's last record says 1
	k, _ := ReadSignKeyFile(key)
	for i := 0; i < 2; i++ {
		k, _, _ = StepSignKeyFile(key, k, logTree(t, path, time.Now()))
	}
	l = openSigned(t, path, key, Options{})
	err := l.Append(Record{Event: EndpointJoin, Outcome: OK})
	l.Close()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "its last record, seq 3, is in signing epoch 1, and the signing key file "+key+" holds the key of epoch 3") {
		t.Fatalf("got %v, want the key file refused naming both epochs", err)
	}
}

func TestSealAndSignTogetherRefused(t *testing.T) {
	_, key := signedLog(t)
	_, err := OpenWith(filepath.Join(t.TempDir(), "a.jsonl"), Options{SealKey: "/x/seal.key", SignKey: key})
	if err == nil || !strings.Contains(err.Error(), "a sealing key (/x/seal.key) and a signing key ("+key+") given: a log is sealed or signed, not both") {
		t.Fatalf("got %v", err)
	}
}

func TestDamagedSignKeyRefusedAtOpen(t *testing.T) {
	_, key := signedLog(t)
	b, _ := os.ReadFile(key)
	b[len(b)/2] ^= 1
	os.WriteFile(key, b, 0o600)
	_, err := OpenWith(filepath.Join(t.TempDir(), "a.jsonl"), Options{SignKey: key})
	if err == nil || !strings.HasPrefix(err.Error(), "signing key: ") {
		t.Fatalf("got %v, want the damaged key file refused", err)
	}
}

// pickyFile fails every write holding one of the bad texts, as a disk
// that fills up just then would.
type pickyFile struct {
	logFile
	bad *atomic.Value // string
}

func (p pickyFile) Write(b []byte) (int, error) {
	if bad, _ := p.bad.Load().(string); bad != "" && strings.Contains(string(b), bad) {
		return 0, syscall.ENOSPC
	}
	return p.logFile.Write(b)
}

func failWritesHolding(t *testing.T) *atomic.Value {
	bad := &atomic.Value{}
	bad.Store("")
	orig := openLogFile
	openLogFile = func(path string) (logFile, error) {
		lf, err := orig(path)
		if err != nil {
			return nil, err
		}
		return pickyFile{lf, bad}, nil
	}
	t.Cleanup(func() { openLogFile = orig })
	return bad
}

// A full disk at an epoch end, once the key file has stepped: the
// audit.epoch is owed, records after it are refused until it is written
// (nothing lands in the new epoch before its certification), and then the
// log checks under FILE.pub.
func TestSignedEpochEndOnAFullDisk(t *testing.T) {
	bad := failWritesHolding(t)
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{EpochRecords: 2})
	l.Start()
	bad.Store(`"event":"audit.epoch"`)
	signedJoins(t, l, 1) // ends the epoch: its checkpoint is written, the key steps, the audit.epoch fails
	waitKeyStepped(t, key, 1)
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a record while the audit.epoch is owed: %v, want refused (no space left)", err)
	}
	if k, err := ReadSignKeyFile(key); err != nil || k.Epoch() != 1 {
		t.Fatalf("key file: %v, %v; want stepped to epoch 1", k, err)
	}
	bad.Store("")
	signedJoins(t, l, 1)
	l.Close()
	recs := checkSigned(t, path, key)
	wantEvents(t, recs, "audit.checkpoint(start) endpoint.join audit.checkpoint(epoch) audit.epoch endpoint.join audit.checkpoint(stop) audit.epoch audit.stop")
}

// The same, and the daemon is killed while the audit.epoch is owed: the
// next start writes it first, from the key file's certification.
func TestSignedEpochEndOnAFullDiskThenKilled(t *testing.T) {
	bad := failWritesHolding(t)
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{EpochRecords: 2})
	l.Start()
	bad.Store(`"event":"audit.epoch"`)
	signedJoins(t, l, 1)
	waitKeyStepped(t, key, 1)
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err == nil {
		t.Fatal("a record while the audit.epoch is owed was written")
	}
	bad.Store(`"event"`) // every record: the kill
	l.Close()
	bad.Store("")
	l = openSigned(t, path, key, Options{})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs := checkSigned(t, path, key)
	// The epoch's last checkpoint went with the audit.epoch that failed, and
	// its key with the process: the join is covered by epoch 1's
	// checkpoints only (verify passes; prove cannot prove it under its own
	// epoch's key).
	wantEvents(t, recs, "audit.checkpoint(start) endpoint.join audit.epoch audit.restart audit.checkpoint(start) audit.checkpoint(stop) audit.epoch audit.stop")
	if r := recs[3]; *r.CleanStop || r.LogEnd.Seq != 2 || r.LogEnd.Event != EndpointJoin {
		t.Errorf("audit.restart: clean_stop %v, log_end %+v; want false, seq 2 endpoint.join", *r.CleanStop, *r.LogEnd)
	}
}

// BenchmarkGroupCommitSigned: BenchmarkAppendGroupCommit's 64 callers, on a
// plain log and on a signed one (the tree's append per group commit, a
// checkpoint every 1,000 records, an epoch every 1,000; and with an epoch
// every 100,000, to tell the key step's cost from the rest), in one run.
// One op is one record made durable.
func BenchmarkGroupCommitSigned(b *testing.B) {
	for _, tc := range []struct {
		name   string
		epoch  int
		signed bool
	}{{"plain", 0, false}, {"signed", 0, true}, {"signed-epoch-100k", 100000, true}} {
		signed := tc.signed
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			o := Options{EpochRecords: tc.epoch}
			if signed {
				o.SignKey = filepath.Join(dir, "sign.key")
				if _, err := NewSignKeyFile(o.SignKey, "node1"); err != nil {
					b.Fatal(err)
				}
			}
			l, err := OpenWith(filepath.Join(dir, "audit.jsonl"), o)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			if err := l.Start(); err != nil {
				b.Fatal(err)
			}
			rec := Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, Driver: "hostpass", Host: "node1",
				NetworkID: "3f1c0d9e8b7a69584736251403f2e1d0c9b8a79685746352413f2e1d0c9b8a7", EndpointID: strings.Repeat("1", 64)}
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Append(rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// A tree store that cannot be opened (here a directory in its place) costs
// the checkpoints, not the records: joins are written, the epoch still
// ends with its certification, and the stop is clean.
func TestUnopenableTreeCostsCheckpointsOnly(t *testing.T) {
	path, key := signedLog(t)
	if err := os.MkdirAll(TreeStorePath(path), 0o750); err != nil {
		t.Fatal(err)
	}
	l := openSigned(t, path, key, Options{})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	signedJoins(t, l, 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs := checkSigned(t, path, key)
	wantEvents(t, recs, "endpoint.join endpoint.join audit.epoch audit.stop")
}

// A key file that cannot be replaced (a directory in its place) holds the
// epoch open: the key stays and signs on, records are written, the step is
// retried a second apart (not at every commit), and once the folder is
// writable the epoch ends as it should.
func TestUnwritableSignKeyFileHoldsTheEpoch(t *testing.T) {
	path, key := signedLog(t)
	logger, hook := logtest.NewNullLogger()
	l := openSigned(t, path, key, Options{EpochRecords: 2, Log: logrus.NewEntry(logger)})
	l.Start()
	b, _ := os.ReadFile(key)
	os.Remove(key)
	os.Mkdir(key, 0o700)
	signedJoins(t, l, 5)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if e := hook.LastEntry(); e != nil && strings.Contains(e.Message, "cannot step the signing key file") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed step was not reported")
		}
	}
	os.Remove(key)
	os.WriteFile(key, b, 0o600)
	time.Sleep(1500 * time.Millisecond) // the retry tick steps the key
	l.Close()
	recs := checkSigned(t, path, key)
	if got := eventText(recs); !strings.HasPrefix(got, "audit.checkpoint(start) endpoint.join endpoint.join endpoint.join endpoint.join endpoint.join audit.checkpoint(epoch) audit.epoch") {
		t.Errorf("records %s", got)
	}
}

// A write whose fsync fails was added to the tree beside the fsync: the
// tree drops it (it is rebuilt from the log), so the next checkpoint is of
// the durable records only, and the log checks.
func TestFailedSyncLeavesNoLeafInTheTree(t *testing.T) {
	f := injectFaults(t)
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{CheckpointRecords: 2})
	l.Start()
	signedJoins(t, l, 1)
	f.set(nil, syscall.EIO, nil)
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append with a failing fsync: %v", err)
	}
	f.set(nil, nil, nil)
	signedJoins(t, l, 1)
	l.Close()
	recs := checkSigned(t, path, key)
	wantEvents(t, recs, "audit.checkpoint(start) endpoint.join endpoint.join audit.checkpoint(records) audit.checkpoint(stop) audit.epoch audit.stop")
}

// The committer's tree reads through a bounded cache: past its bound (it
// starts over) the roots still equal those of a tree without it.
func TestCachedTreeHashes(t *testing.T) {
	plain, cached := NewTree(), NewTree()
	cached.hashes = &cachedHashes{hashStore: cached.hashes, m: map[int64]tlog.Hash{}}
	for i := 0; i < 3*treeCache/2; i++ {
		line := []byte(fmt.Sprint("record ", i))
		if err := plain.Append(line); err != nil {
			t.Fatal(err)
		}
		if err := cached.Append(line); err != nil {
			t.Fatal(err)
		}
		if i%997 == 0 || i == 3*treeCache/2-1 {
			a, _ := plain.Root()
			b, err := cached.Root()
			if err != nil || a != b {
				t.Fatalf("after %d records: root %v, %v; want %v", i+1, b, err, a)
			}
		}
	}
}

// Records kept in memory while the log is unwritable, or offered again by
// their caller once it is (as the watcher does), are written in the epoch
// they are dated in: the key steps only after a write succeeded (which
// writes the kept ones) and the log has written stepQuiet without a
// failure, so none lands in the next epoch dated before its key's
// certification, which verify would call backdated.
func TestRecordsOfAnOutageStayInTheirEpoch(t *testing.T) {
	bad := failWritesHolding(t)
	path, key := signedLog(t)
	l := openSigned(t, path, key, Options{EpochInterval: 50 * time.Millisecond})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	bad.Store(`"event"`) // the disk is full, for an hour
	kept := Record{Time: time.Now().Add(-time.Hour).UTC(), Event: EndpointJoin, Outcome: OK, EndpointID: "kept"}
	again := Record{Time: time.Now().Add(-time.Hour).UTC(), Event: EndpointJoin, Outcome: OK, EndpointID: "offered again"}
	if err := l.AppendOrKeep(kept); err == nil {
		t.Fatal("a record written on a full disk")
	}
	if err := l.Append(again); err == nil {
		t.Fatal("a record written on a full disk")
	}
	time.Sleep(200 * time.Millisecond) // the epoch is due meanwhile
	bad.Store("")
	signedJoins(t, l, 1)
	time.Sleep(200 * time.Millisecond) // a step would be done
	if err := l.Append(again); err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs := checkSigned(t, path, key)
	for _, r := range recs {
		if r.EndpointID != "" && r.EndpointID != "0" && *r.Epoch != 0 {
			t.Errorf("the record %q, seq %d, is in epoch %d, want 0: %s", r.EndpointID, r.Seq, *r.Epoch, eventText(recs))
		}
	}
	pub, err := ReadSignPub(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify([]string{path}, VerifyOptions{Pub: pub}); err != nil {
		t.Error(err)
	}
}

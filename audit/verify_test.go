package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeLog appends n endpoint records through a real Log and returns its
// files. maxSize > 0 rotates; sealKey != "" seals with epochs of 10 records.
func writeLog(t *testing.T, n int, maxSize int64, sealKey string) (path string, files []string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{MaxSize: maxSize, SealKey: sealKey, EpochRecords: 10, EpochInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, NetworkID: "net1", EndpointID: fmt.Sprintf("ep%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, err = Files(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, files
}

// newKey writes an initial key and the daemon's copy of it.
func newKey(t *testing.T) (initial []byte, daemonCopy string) {
	t.Helper()
	dir := t.TempDir()
	if err := NewKeyFile(filepath.Join(dir, "initial.key")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "initial.key"))
	daemonCopy = filepath.Join(dir, "daemon.key")
	os.WriteFile(daemonCopy, b, 0o600)
	_, initial, err := ReadKeyFile(filepath.Join(dir, "initial.key"))
	if err != nil {
		t.Fatal(err)
	}
	return initial, daemonCopy
}

func lines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func rewrite(t *testing.T, file string, ls []string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(strings.Join(ls, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
}

func wantProblem(t *testing.T, err error, kind ProblemKind, line int, seq uint64, detail string) {
	t.Helper()
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("verify: got %v, want a %s problem", err, kind)
	}
	if p.Kind != kind || p.Line != line || p.Seq != seq || !strings.Contains(p.Detail, detail) {
		t.Fatalf("verify: got %q\nwant kind %q at line %d seq %d with %q", p.Error(), kind, line, seq, detail)
	}
}

func TestVerifyAcceptsAnIntactRotatedLog(t *testing.T) {
	_, files := writeLog(t, 60, 2000, "")
	if len(files) < 3 {
		t.Fatalf("want the log rotated into several files, got %v", files)
	}
	sum, err := Verify(files, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 60 || sum.FirstSeq != 1 || sum.LastSeq != 60 || sum.Files != len(files) || sum.Sealed {
		t.Errorf("summary %+v, want 60 plain records in %d files", sum, len(files))
	}
}

func TestVerifyNamesEachTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, ls []string) []string
		kind   ProblemKind
		line   int
		seq    uint64
		detail string
	}{
		{"one byte changed", func(t *testing.T, ls []string) []string {
			ls[6] = strings.Replace(ls[6], `"ep6"`, `"ep7"`, 1)
			return ls
		}, Modified, 7, 7, "does not match its hash"},
		{"record deleted", func(t *testing.T, ls []string) []string {
			return append(ls[:4:4], ls[5:]...)
		}, Missing, 5, 6, "seq 5 is absent before this line"},
		{"two swapped", func(t *testing.T, ls []string) []string {
			ls[3], ls[4] = ls[4], ls[3]
			return ls
		}, Reordered, 4, 5, "seq 5 comes before seq 4"},
		{"forged record inserted", func(t *testing.T, ls []string) []string {
			var prev Record
			json.Unmarshal([]byte(ls[8]), &prev)
			forged := Record{Time: time.Now().UTC(), Seq: 10, Prev: prev.Hash, Event: EndpointJoin, Outcome: OK, NetworkID: "evil"}
			line, _ := encode(&forged, nil)
			return append(ls[:9:9], append([]string{string(line)}, ls[9:]...)...)
		}, Inserted, 11, 10, "seq 10 appears twice"},
		{"forged record replacing one, chain rebuilt up to it", func(t *testing.T, ls []string) []string {
			var prev Record
			json.Unmarshal([]byte(ls[8]), &prev)
			forged := Record{Time: time.Now().UTC(), Seq: 10, Prev: prev.Hash, Event: EndpointJoin, Outcome: OK, NetworkID: "evil"}
			line, _ := encode(&forged, nil)
			ls[9] = string(line)
			return ls
		}, ChainBroken, 11, 11, "prev"},
		{"not JSON", func(t *testing.T, ls []string) []string {
			ls[2] = "hello"
			return ls
		}, NotJSON, 3, 0, "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, files := writeLog(t, 20, 0, "")
			rewrite(t, path, tc.tamper(t, lines(t, files[0])))
			_, err := Verify([]string{path}, VerifyOptions{})
			wantProblem(t, err, tc.kind, tc.line, tc.seq, tc.detail)
		})
	}
}

func TestVerifyCatchesTruncation(t *testing.T) {
	path, _ := writeLog(t, 10, 0, "")
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-30], 0o640) // cut inside the last line
	_, err := Verify([]string{path}, VerifyOptions{})
	wantProblem(t, err, Truncated, 10, 10, "the last line is incomplete")

	// Whole records cut off the end leave a valid chain: only an anchor
	// kept elsewhere (a syslog collector's copy) shows it.
	path, _ = writeLog(t, 10, 0, "")
	ls := lines(t, path)
	var last Record
	json.Unmarshal([]byte(ls[9]), &last)
	rewrite(t, path, ls[:7])
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatalf("a cleanly cut chain verifies without an anchor: %v", err)
	}
	_, err = Verify([]string{path}, VerifyOptions{Anchors: map[uint64]string{10: last.Hash}})
	wantProblem(t, err, Truncated, 7, 7, "the log ends at seq 7 but an anchor names seq 10")
}

func TestVerifyCatchesARemovedRotatedFile(t *testing.T) {
	_, files := writeLog(t, 60, 2000, "")
	_, err := Verify(append(files[:1:1], files[2:]...), VerifyOptions{})
	wantProblem(t, err, Missing, 1, seqOfFirst(t, files[2]), "a rotated file removed?")

	_, err = Verify(files[1:], VerifyOptions{})
	wantProblem(t, err, MissingStart, 1, seqOfFirst(t, files[1]), "its oldest files are gone")
}

func seqOfFirst(t *testing.T, file string) uint64 {
	var r Record
	json.Unmarshal([]byte(lines(t, file)[0]), &r)
	return r.Seq
}

func TestSealedLogVerifiesOnlyUnderTheInitialKey(t *testing.T) {
	initial, daemonKey := newKey(t)
	_, files := writeLog(t, 35, 0, daemonKey)
	sum, err := Verify(files, VerifyOptions{Key: initial})
	if err != nil {
		t.Fatal(err)
	}
	// 35 records, an audit.epoch record at the end of each 10, and one at
	// the stop: epochs 0..3, and the key file at epoch 4.
	if !sum.SealsChecked || sum.LastEpoch != 3 || sum.Records != 39 {
		t.Errorf("summary %+v, want 39 records sealed through epoch 3", sum)
	}
	epoch, current, _ := ReadKeyFile(daemonKey)
	if epoch != 4 || string(current) == string(initial) {
		t.Errorf("daemon key file at epoch %d, want 4 and no longer the initial key", epoch)
	}
	if sum, err := Verify(files, VerifyOptions{}); err != nil || sum.SealsChecked {
		t.Errorf("without a key: %+v %v, want the chain checked and the seals not", sum, err)
	}

	_, wrong := newKey(t)
	_, wrongKey, _ := ReadKeyFile(wrong)
	_, err = Verify(files, VerifyOptions{Key: wrongKey})
	wantProblem(t, err, BadKey, 1, 1, "does not verify under this key")
}

func TestSealedLogResistsForgeryWithTheStolenKey(t *testing.T) {
	initial, daemonKey := newKey(t)
	// Whoever takes the host holds the daemon's current key: 25 records
	// in epochs of 10 leave it at epoch 2.
	path, _ := writeLog(t, 25, 0, daemonKey)
	_, stolen, _ := ReadKeyFile(daemonKey)

	forge := func(ls []string, i int, epoch uint64, key []byte) []string {
		var r Record
		json.Unmarshal([]byte(ls[i]), &r)
		r.NetworkID = "evil"
		r.Epoch = &epoch
		line, _ := encode(&r, key)
		ls[i] = string(line)
		return ls
	}
	for _, tc := range []struct {
		name   string
		epoch  uint64
		key    []byte
		kind   ProblemKind
		detail string
	}{
		{"old record resealed with the stolen key", 0, stolen, Modified, "does not verify under epoch 0's key"},
		{"old record moved into the stolen key's epoch", 2, stolen, Missing, "epoch 2 follows epoch 0 without its audit.epoch record"},
		{"old record rehashed without any key", 0, nil, Modified, "does not verify under epoch 0's key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := lines(t, path)
			tampered := filepath.Join(t.TempDir(), "audit.jsonl")
			rewrite(t, tampered, forge(ls, 4, tc.epoch, tc.key))
			_, err := Verify([]string{tampered}, VerifyOptions{Key: initial})
			wantProblem(t, err, tc.kind, 5, 5, tc.detail)
		})
	}
}

func TestChainContinuesAcrossRestartAndRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for round := 0; round < 3; round++ {
		l, _ := OpenWith(path, Options{MaxSize: 1500})
		for i := 0; i < 7; i++ {
			if err := l.Append(Record{Event: EndpointLeave, Outcome: OK, NetworkID: "n"}); err != nil {
				t.Fatal(err)
			}
		}
		if round == 1 {
			if err := l.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
	}
	files, _ := Files(path)
	sum, err := Verify(files, VerifyOptions{})
	if err != nil || sum.Records != 21 {
		t.Fatalf("after restarts and rotations: %+v %v, want 21 records, chain intact", sum, err)
	}
}

// TestForgedLogFromALaterEpochDoesNotVerify is the attack of issue 7: whoever
// holds the daemon's key file (epoch 3 here) starts a brand-new log with it.
// Every seal in it is good under the initial key stepped forward; only its
// start gives it away.
func TestForgedLogFromALaterEpochDoesNotVerify(t *testing.T) {
	initial, daemonKey := newKey(t)
	writeLog(t, 25, 0, daemonKey) // epochs of 10, and the stop ends one: the key file is at epoch 3
	stolen := filepath.Join(t.TempDir(), "stolen.key")
	b, _ := os.ReadFile(daemonKey)
	os.WriteFile(stolen, b, 0o600)

	forged, files := writeLog(t, 5, 0, stolen)
	_, err := Verify(files, VerifyOptions{Key: initial})
	wantProblem(t, err, LateStart, 1, 1, "the genesis record is sealed in epoch 3, not epoch 0: a log starts in epoch 0, so this one was started with a later key, as whoever holds the daemon's key file can do; if you know from elsewhere (a syslog collector, an earlier verify) where the log starts, pass --start SEQ:HASH with that record's seq and hash")

	// A plain prefix, written without any key, then the stolen key.
	l := Open(forged+".2", nil)
	l.Append(Record{Event: NetworkCreate, Outcome: OK})
	l.Close()
	l, _ = OpenWith(forged+".2", Options{SealKey: stolen})
	l.Append(Record{Event: EndpointJoin, Outcome: OK})
	l.Close()
	_, err = Verify([]string{forged + ".2"}, VerifyOptions{Key: initial})
	wantProblem(t, err, Unsealed, 1, 1, "the log starts with a record that is not sealed: under --key a log must start sealed in epoch 0")

	// Nothing sealed at all: the key would check nothing.
	_, plain := writeLog(t, 3, 0, "")
	_, err = Verify(plain, VerifyOptions{Key: initial})
	wantProblem(t, err, Unsealed, 1, 1, "not sealed")
	empty := filepath.Join(t.TempDir(), "audit.jsonl")
	os.WriteFile(empty, nil, 0o640)
	_, err = Verify([]string{empty}, VerifyOptions{Key: initial})
	wantProblem(t, err, Unsealed, 0, 0, "no record in the log is sealed, so the key checked nothing")
}

func TestLaterStartVerifiesOnlyWhereTheUserSaysItStarts(t *testing.T) {
	initial, daemonKey := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, _ := OpenWith(path, Options{MaxSize: 3000, SealKey: daemonKey, EpochRecords: 10, EpochInterval: time.Hour})
	for i := 0; i < 40; i++ {
		if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, NetworkID: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	files, _ := Files(path)
	if len(files) < 4 {
		t.Fatalf("want several files, got %v", files)
	}
	kept := files[2:] // the two oldest files were removed
	var first Record
	json.Unmarshal([]byte(lines(t, kept[0])[0]), &first)

	_, err := Verify(kept, VerifyOptions{Key: initial})
	wantProblem(t, err, MissingStart, 1, first.Seq, "its oldest files are gone, or it was started elsewhere; if you know from elsewhere")

	sum, err := Verify(kept, VerifyOptions{Key: initial, Start: &Anchor{Seq: first.Seq, Hash: first.Hash}})
	if err != nil || !sum.StartGiven || sum.FirstSeq != first.Seq || sum.FirstEpoch != *first.Epoch || !sum.SealsChecked {
		t.Fatalf("with --start %d:%s: %+v %v, want it verified from there", first.Seq, first.Hash, sum, err)
	}

	_, err = Verify(kept, VerifyOptions{Key: initial, Start: &Anchor{Seq: first.Seq, Hash: Genesis}})
	wantProblem(t, err, Modified, 1, first.Seq, "has hash "+first.Hash+", not "+Genesis+" as --start says")
	_, err = Verify(files, VerifyOptions{Key: initial, Start: &Anchor{Seq: first.Seq, Hash: first.Hash}})
	wantProblem(t, err, MissingStart, 1, 1, fmt.Sprintf("the log starts at seq 1, not at seq %d as --start says", first.Seq))
}

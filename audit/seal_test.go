package audit

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// appendRaw appends lines to path.
func appendRaw(t *testing.T, path string, ls ...[]byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range ls {
		f.Write(append(l, '\n'))
	}
}

// The daemon steps one epoch at a time: a last line claiming more than one
// step past the key file's epoch, which anyone can append without the key,
// makes the log unavailable with an error naming the file and the seq,
// at once, instead of stepping the key (2^50 steps would take years).
func TestReopenRefusesATailMoreThanOneEpochAhead(t *testing.T) {
	for _, next := range []uint64{3, 1 << 50} {
		t.Run(fmt.Sprint(next), func(t *testing.T) {
			_, daemonKey := newKey(t)
			path, _ := writeLog(t, 5, 0, daemonKey) // the stop ends epoch 0: the key file is at 1
			recs := readRecords(t, path)
			p := recs[len(recs)-1]
			e := uint64(1)
			forged := Record{Time: time.Now().UTC(), Seq: p.Seq + 1, Event: EpochEnd, Outcome: OK, Schema: Schema, Epoch: &e, NextEpoch: &next, Prev: p.Hash}
			line, err := encode(&forged, nil) // no key needed
			if err != nil {
				t.Fatal(err)
			}
			appendRaw(t, path, line)
			l, err := OpenWith(path, Options{SealKey: daemonKey})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			done := make(chan error, 1)
			go func() { done <- l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK}) }()
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("Append still waits after a minute: open() is stepping the key")
			}
			want := fmt.Sprintf("%s: its last record, seq %d, claims epoch %d, %d key steps past the key file's epoch 1 (the daemon steps one at a time, so at most 1)", path, forged.Seq, next, next-1)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ErrUnavailable.Error()) {
				t.Fatalf("append: %v\nwant the log unavailable: %q", err, want)
			}
		})
	}
}

// The key file one step behind its log's tail (a crash after the
// audit.epoch record, before the key file was overwritten) is still
// picked up: the key steps once.
func TestReopenStepsOnceAfterAnEpochRecord(t *testing.T) {
	initial, daemonKey := newKey(t)
	path, _ := writeLog(t, 5, 0, daemonKey)
	epoch, key, _ := ReadKeyFile(daemonKey)
	recs := readRecords(t, path)
	p := recs[len(recs)-1]
	next := epoch + 1
	end := Record{Time: time.Now().UTC(), Seq: p.Seq + 1, Event: EpochEnd, Outcome: OK, Schema: Schema, Epoch: &epoch, NextEpoch: &next, Prev: p.Hash}
	line, err := encode(&end, key)
	if err != nil {
		t.Fatal(err)
	}
	appendRaw(t, path, line)
	l, err := OpenWith(path, Options{SealKey: daemonKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Verify([]string{path}, VerifyOptions{Key: initial}); err != nil {
		t.Fatal(err)
	}
}

// An audit.epoch record may only name the next epoch: with the live key, a
// sealed next_epoch of 2^40 is refused at once, not derived.
func TestVerifyRefusesAnEpochRecordSkippingEpochs(t *testing.T) {
	for _, next := range []uint64{3, 1 << 40, 0} { // the key file is at epoch 1
		t.Run(fmt.Sprint(next), func(t *testing.T) {
			initial, daemonKey := newKey(t)
			path, files := writeLog(t, 5, 0, daemonKey)
			epoch, stolen, _ := ReadKeyFile(daemonKey)
			recs := readRecords(t, path)
			p := recs[len(recs)-1]
			m := Record{Time: time.Now().UTC(), Seq: p.Seq + 1, Event: EpochEnd, Outcome: OK, Schema: Schema, Epoch: &epoch, NextEpoch: &next, Prev: p.Hash}
			l1, _ := encode(&m, stolen)
			r := Record{Time: time.Now().UTC(), Seq: p.Seq + 2, Event: EndpointJoin, Outcome: OK, Schema: Schema, Epoch: &next, Prev: m.Hash}
			l2, _ := encode(&r, stolen)
			appendRaw(t, path, l1, l2)
			done := make(chan error, 1)
			go func() { _, err := Verify(files, VerifyOptions{Key: initial}); done <- err }()
			select {
			case err := <-done:
				wantProblem(t, err, Modified, len(recs)+1, m.Seq, fmt.Sprintf("epoch %d ends with next_epoch %d, but the daemon steps one epoch at a time: it must be %d", epoch, next, epoch+1))
			case <-time.After(time.Minute):
				t.Fatal("verify still runs after a minute: it is deriving keys")
			}
		})
	}
}

// A clean stop ends the epoch: the key file left on the host no longer
// holds the key that sealed the last records, so whoever takes the host
// after the stop cannot rewrite them. A stop with nothing sealed in the
// epoch ends nothing.
func TestStopEndsTheEpoch(t *testing.T) {
	initial, daemonKey := newKey(t)
	path, files := writeLog(t, 3, 0, daemonKey)
	recs := readRecords(t, path)
	wantSeqs(t, recs, EndpointJoin, EndpointJoin, EndpointJoin, EpochEnd)
	if e := recs[3]; *e.Epoch != 0 || *e.NextEpoch != 1 {
		t.Errorf("the stop's audit.epoch ends epoch %d for %d, want 0 for 1", *e.Epoch, *e.NextEpoch)
	}
	epoch, key, _ := ReadKeyFile(daemonKey)
	if epoch != 1 {
		t.Fatalf("the key file is at epoch %d after a clean stop, want 1", epoch)
	}

	// Forge the last join with the key on the host, and rechain.
	ls := lines(t, path)
	var last Record
	json.Unmarshal([]byte(ls[2]), &last)
	last.EndpointID = "forged"
	line, _ := encode(&last, key)
	ls[2] = string(line)
	next := Record{}
	json.Unmarshal([]byte(ls[3]), &next)
	next.Prev = last.Hash
	line, _ = encode(&next, key)
	ls[3] = string(line)
	rewrite(t, path, ls)
	_, err := Verify(files, VerifyOptions{Key: initial})
	wantProblem(t, err, Modified, 3, 3, "the seal does not verify under epoch 0's key")

	// Open and stop again with nothing written: no second audit.epoch.
	path2, _ := writeLog(t, 0, 0, daemonKey)
	if b, _ := os.ReadFile(path2); len(b) != 0 {
		t.Errorf("a stop with nothing sealed wrote %s", b)
	}
}

// A daemon key file lost or damaged in a later epoch is restored with the
// key stepped from the initial one: the log reopens with it, continues the
// chain, and verifies under the initial key. The initial key itself is
// refused by that log (more than one step behind).
func TestSteppedKeyRestoresALogInALaterEpoch(t *testing.T) {
	initial, daemonKey := newKey(t)
	initialFile := filepath.Join(filepath.Dir(daemonKey), "initial.key")
	path, _ := writeLog(t, 35, 0, daemonKey) // epochs 0-3, and the stop's audit.epoch: the key file is at 4
	epoch, _, err := ReadKeyFile(daemonKey)
	if err != nil || epoch != 4 {
		t.Fatalf("daemon key at epoch %d (%v), want 4", epoch, err)
	}
	os.Remove(daemonKey) // lost with a disk

	// The initial key is 4 steps behind: refused.
	copyOfInitial := filepath.Join(t.TempDir(), "copy.key")
	b, _ := os.ReadFile(initialFile)
	os.WriteFile(copyOfInitial, b, 0o600)
	l, err := OpenWith(path, Options{SealKey: copyOfInitial, EpochRecords: 10, EpochInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err == nil || !strings.Contains(err.Error(), "key steps past the key file's epoch") {
		t.Errorf("append under the initial key: %v, want it refused as key steps behind", err)
	}
	l.Close()

	stepped := filepath.Join(t.TempDir(), "seal.key")
	if err := StepKeyFile(initialFile, stepped, 4); err != nil {
		t.Fatal(err)
	}
	if err := StepKeyFile(initialFile, stepped, 4); err == nil {
		t.Error("StepKeyFile overwrote an existing file")
	}
	if err := StepKeyFile(stepped, filepath.Join(t.TempDir(), "x.key"), 5); err == nil || !strings.Contains(err.Error(), "holds the key of epoch 4; a key is stepped from the initial key") {
		t.Errorf("stepping from a non-initial key: %v", err)
	}
	l, err = OpenWith(path, Options{SealKey: stepped, EpochRecords: 10, EpochInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, NetworkID: "net1", EndpointID: "after"}); err != nil {
		t.Fatalf("append under the stepped key: %v", err)
	}
	l.Close()
	files, _ := Files(path)
	sum, err := Verify(files, VerifyOptions{Key: initial})
	if err != nil || !sum.SealsChecked || sum.LastEpoch < 4 {
		t.Errorf("verify after restoring: %+v %v", sum, err)
	}
}

// A key file that cannot be overwritten stops key evolution after the one
// epoch the log has already ended: the log stays at most one epoch ahead of
// the key file, which open accepts, and a stop says the old key is still on
// disk instead of claiming the epoch ended.
func TestUnwritableKeyFileHoldsEvolutionAtOneStep(t *testing.T) {
	initial, key := newKey(t)
	orig, _ := os.ReadFile(key)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{SealKey: key, EpochRecords: 2, EpochInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(key)
	os.Mkdir(key, 0o700) // the key file cannot be overwritten now
	for i := 0; i < 7; i++ {
		if err := l.Append(Record{Time: time.Now().UTC(), Event: NetworkCreate, Outcome: OK, NetworkID: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "the sealing key file could not be overwritten") {
		t.Errorf("Close() = %v, want the stale key file named", err)
	}
	ends := 0
	for _, r := range readRecords(t, path) {
		if r.Event == EpochEnd {
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("%d audit.epoch records, want 1: no epoch ends while the key file lags", ends)
	}
	os.Remove(key)
	os.WriteFile(key, orig, 0o600)
	l, err = OpenWith(path, Options{SealKey: key, EpochRecords: 2, EpochInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Record{Time: time.Now().UTC(), Event: NetworkCreate, Outcome: OK, NetworkID: "n"}); err != nil {
		t.Fatalf("append after restart with the key file one epoch behind: %v", err)
	}
	l.Close()
	files, _ := Files(path)
	if _, err := Verify(files, VerifyOptions{Key: initial}); err != nil {
		t.Errorf("verify: %v", err)
	}
}

func TestTimedKeyEvolutionThatFailedIsRetried(t *testing.T) {
	initial, daemonKey := newKey(t)
	disk := injectFaults(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{SealKey: daemonKey, EpochRecords: 1000, EpochInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	disk.set(syscall.EIO, nil, nil) // the epoch's time comes while the disk fails
	time.Sleep(400 * time.Millisecond)
	if epoch, _, _ := ReadKeyFile(daemonKey); epoch != 0 {
		t.Fatalf("key at epoch %d while the disk failed, want 0: an epoch must not end without its record", epoch)
	}
	disk.set(nil, nil, nil)
	deadline := time.Now().Add(5 * time.Second)
	for epoch, _, _ := ReadKeyFile(daemonKey); epoch == 0; epoch, _, _ = ReadKeyFile(daemonKey) {
		if time.Now().After(deadline) {
			t.Fatal("the key did not evolve once the disk worked again: a failed timed evolution was never retried")
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.Close()
	wantSeqs(t, readRecords(t, path), EndpointJoin, EpochEnd)
	if _, err := Verify([]string{path}, VerifyOptions{Key: initial}); err != nil {
		t.Fatal(err)
	}
}

// The batch encoder writes what json.Marshal does, HTML escaping and all,
// and the hash of those bytes: lines written before it stay comparable.
func TestLineEncoderWritesWhatMarshalDoes(t *testing.T) {
	recs := []Record{
		{Event: EndpointJoin, Outcome: OK, Tag: "<a&b> \u2028 é", Seq: 7, Prev: Genesis},
		{Event: NetworkCreate, Outcome: Refused, Error: "\"quoted\"\n", Options: map[string]any{"z": 1, "a": []any{"x"}}, Prev: Genesis},
	}
	for _, key := range [][]byte{nil, []byte("0123456789abcdef0123456789abcdef")} {
		e := newLineEncoder(nil, key)
		for i := range recs {
			rec := recs[i]
			rec.Hash = ""
			body, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			h := hasher(key)
			h.Write(body)
			want := string(body[:len(body)-1]) + hashMember + hex.EncodeToString(h.Sum(nil)) + `"}`
			got, err := e.line(&rec)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want || rec.Hash != hex.EncodeToString(h.Sum(nil)) {
				t.Errorf("key %x: got\n%s (hash %s)\nwant\n%s", key, got, rec.Hash, want)
			}
		}
	}
}

// What json.Marshal writes for rec, its hash member added: the line the
// encoder must produce.
func marshalLine(t *testing.T, rec Record, key []byte) string {
	t.Helper()
	rec.Hash = ""
	body, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	h := hasher(key)
	h.Write(body)
	return string(body[:len(body)-1]) + hashMember + hex.EncodeToString(h.Sum(nil)) + `"}`
}

// Invalid UTF-8 and NUL are written as json.Marshal writes them (U+FFFD,
// \u0000), and records near, at and past MaxRecord are cut, when they must
// be, to the record json.Marshal would write for what is left, in a buffer
// shared with the lines before them, which stay whole.
func TestLineEncoderWritesWhatMarshalDoesForInvalidAndOversizeRecords(t *testing.T) {
	sized := func(target int) Record {
		rec := Record{Event: HostJoin, Outcome: OK, Seq: 9, Prev: Genesis, Detail: "x"}
		line, err := newLineEncoder(nil, nil).line(&rec)
		if err != nil {
			t.Fatal(err)
		}
		rec.Detail = strings.Repeat("x", target-len(line)+1)
		if line, _ := newLineEncoder(nil, nil).line(&rec); len(line) != target {
			t.Fatalf("a record of %d bytes made %d", target, len(line))
		}
		rec.Hash = ""
		return rec
	}
	recs := []Record{
		{Event: EndpointJoin, Outcome: OK, Tag: "bad \xff\xfe utf-8", Detail: "nul \x00 here", Seq: 1, Prev: Genesis},
		{Event: NetworkCreate, Outcome: Refused, Error: "\xff", Options: map[string]any{"k\x00": "\xc3"}, Seq: 2, Prev: Genesis},
		sized(MaxRecord - 300),
		sized(MaxRecord),
		sized(MaxRecord + 1),
		sized(2 * MaxRecord),
		{Event: EndpointLeave, Outcome: OK, Tag: strings.Repeat("<\xff", MaxRecord), Seq: 3, Prev: Genesis},
	}
	for _, key := range [][]byte{nil, []byte("0123456789abcdef0123456789abcdef")} {
		e := newLineEncoder(nil, key)
		var want strings.Builder
		for i := range recs {
			rec := recs[i]
			got, err := e.record(&rec)
			if err != nil {
				t.Fatal(err)
			}
			line := marshalLine(t, rec, key) // rec as cut
			if string(got) != line {
				t.Errorf("key %x, record %d: got\n%.300s\nwant\n%.300s", key, i, got, line)
			}
			if len(got) > MaxRecord {
				t.Errorf("key %x, record %d: %d bytes, over MaxRecord (%d)", key, i, len(got), MaxRecord)
			}
			if cut := len(rec.Truncated) > 0; cut != (len(marshalLine(t, recs[i], key)) > MaxRecord) {
				t.Errorf("key %x, record %d: truncated %v; want a cut exactly when the whole record is over MaxRecord", key, i, rec.Truncated)
			}
			want.WriteString(line)
			if string(e.w.b) != want.String() {
				t.Fatalf("key %x, record %d: the buffer does not hold the lines so far, one after the other", key, i)
			}
		}
	}
}

package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What verify prints is what an auditor reads: these tests hold each
// problem's whole text, with its file, line and seq.

func wantText(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Fatalf("verify says\n%v\nwant\n%s", err, want)
	}
}

func TestProblemLeavesOutWhatItHasNot(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.jsonl", Line: 2, Seq: 7, Kind: Modified, Detail: "d"}, "a.jsonl line 2 (seq 7): modified: d"},
		{Problem{File: "a.jsonl", Line: 2, Kind: NotJSON, Detail: "d"}, "a.jsonl line 2: not JSON: d"},
		{Problem{File: "a.jsonl", Seq: 7, Kind: Missing, Detail: "d"}, "a.jsonl (seq 7): missing: d"},
		{Problem{File: "a.jsonl", Kind: Unsealed, Detail: "d"}, "a.jsonl: unsealed: d"},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("%+v reads %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestVerifyTextOfAGap(t *testing.T) {
	path, files := writeLog(t, 10, 0, "")
	ls := lines(t, files[0])
	rewrite(t, path, append(ls[:4:4], ls[5:]...))
	_, err := Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 5 (seq 6): missing: seq 5 is absent before this line")

	rewrite(t, path, append(ls[:4:4], ls[7:]...))
	_, err = Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 5 (seq 8): missing: seq 5 to 7 are absent before this line")
}

// An anchor that differs names the record where the log has it: its file
// and line, not the last file read.
func TestVerifyTextOfAnAnchor(t *testing.T) {
	_, files := writeLog(t, 30, 1500, "")
	if len(files) < 2 {
		t.Fatalf("want a rotated log, got %v", files)
	}
	wrong := strings.Repeat("ab", 32)
	var r Record
	json.Unmarshal([]byte(lines(t, files[0])[1]), &r)
	_, err := Verify(files, VerifyOptions{Anchors: map[uint64]string{r.Seq: wrong}})
	wantText(t, err, files[0]+" line 2 (seq 2): modified: its hash is "+r.Hash+", but an --anchor names seq 2 with hash "+wrong+": the record was changed (the chain rebuilt after it), or the anchor is wrong")

	var first Record
	json.Unmarshal([]byte(lines(t, files[1])[0]), &first)
	_, err = Verify(files[1:], VerifyOptions{Anchors: map[uint64]string{2: wrong}, Start: &Anchor{Seq: first.Seq, Hash: first.Hash}})
	wantText(t, err, files[1]+" (seq 2): missing: an --anchor names seq 2, but the log starts at seq "+itoa(first.Seq)+", as --start says: give anchors at or after the start")
	_, err = Verify(files, VerifyOptions{Anchors: map[uint64]string{0: wrong}})
	wantText(t, err, files[0]+": missing: an --anchor names seq 0, but the log starts at seq 1: give anchors at or after the start")
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestVerifyTextOfALineThatReadsTwoWays(t *testing.T) {
	path, _ := writeLog(t, 3, 0, "")
	ls := lines(t, path)
	ls[1] = strings.Replace(ls[1], `"outcome"`, `"Seq":99,"outcome"`, 1)
	rewrite(t, path, ls)
	_, err := Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 2 (seq 2): modified: the line reads two ways: it has a second member that encoding/json reads as time, seq, event, epoch, next_epoch or prev (json matches names in any case and keeps the last), so json can read it differently from verify's fast reader, which reads them where hostpass writes them (fast reader: seq 2; json: seq 99); hostpass writes each of these members once, so the line was edited")

	// The same seq twice reads the same both ways: nothing to name.
	ls[1] = strings.Replace(ls[1], `"Seq":99`, `"seq":2`, 1)
	rewrite(t, path, ls)
	_, err = Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 2 (seq 2): modified: the line reads two ways: it has a second member that encoding/json reads as time, seq, event, epoch, next_epoch or prev (json matches names in any case and keeps the last), so json can read it differently from verify's fast reader, which reads them where hostpass writes them; hostpass writes each of these members once, so the line was edited")
}

func TestVerifyTextOfALineNotJSONOrTorn(t *testing.T) {
	path, _ := writeLog(t, 3, 0, "")
	ls := lines(t, path)
	ls[1] = "hello"
	rewrite(t, path, ls)
	_, err := Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+` line 2: not JSON: the line is not JSON (invalid character 'h' looking for beginning of value): each line of the log is one JSON record, ending in its "hash" member`)

	path, _ = writeLog(t, 3, 0, "")
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-30], 0o640)
	last := lines(t, path)[2]
	_, err = Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 3 (seq 3): truncated: the last line is incomplete ("+itoa(uint64(len(last)))+" bytes, no newline): a torn write or a cut file")
}

// A line that is JSON but holds a member of the wrong type: the fast
// reader refuses it, and json names the member.
func TestVerifyTextOfJSONThatIsNotARecord(t *testing.T) {
	path, _ := writeLog(t, 3, 0, "")
	ls := lines(t, path)
	ls[1] = strings.Replace(ls[1], `"seq":2`, `"seq":"2"`, 1)
	rewrite(t, path, ls)
	_, err := Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 2: not JSON: the line is JSON but not a record: its seq member is a JSON string, where hostpass writes a whole number, 0 or more")

	path, _ = writeLog(t, 3, 0, "")
	ls = lines(t, path)
	ls[1] = strings.Replace(ls[1], `"outcome"`, `"host_view":7,"outcome"`, 1)
	os.WriteFile(path, rechain([]byte(strings.Join(ls, "\n")+"\n")), 0o640)
	_, err = Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 2 (seq 2): not JSON: the line is JSON but not a record: its host_view member is a JSON number, where hostpass writes a string")
}

func TestVerifyTextOfALineWithoutItsHash(t *testing.T) {
	path, _ := writeLog(t, 3, 0, "")
	ls := lines(t, path)
	i := strings.Index(ls[1], `,"hash":`)
	ls[1] = ls[1][:i] + "}"
	rewrite(t, path, ls)
	_, err := Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+` line 2 (seq 2): modified: the line does not end with a "hash" member: every record ends with "hash", the SHA-256 or seal of the rest of its line`)
}

func TestVerifyTextOfABadFirstRecord(t *testing.T) {
	path, _ := writeLog(t, 3, 0, "")
	ls := lines(t, path)
	ls[0] = strings.Replace(ls[0], `"prev":"`+Genesis, `"prev":"`+strings.Repeat("ab", 32), 1)
	rewrite(t, path, ls)
	_, err := Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 1 (seq 1): modified: the first record is seq 1 with prev abababababab…: a log starts at seq 1 with the genesis prev (64 zeros)")
}

// Without a key, a sealed record's hash is not checked: its epoch can be
// edited and the chain still holds, so the epoch checks speak.
func TestVerifyTextOfEpochs(t *testing.T) {
	_, daemonKey := newKey(t)
	path, _ := writeLog(t, 15, 0, daemonKey) // line 11 ends epoch 0
	ls := lines(t, path)
	if !strings.Contains(ls[10], `"next_epoch":1`) || !strings.Contains(ls[12], `"epoch":1,`) {
		t.Fatalf("want line 11 to end epoch 0 and line 13 in epoch 1:\n%s\n%s", ls[10], ls[12])
	}
	edit := func(i int, from, to string) {
		t.Helper()
		m := append([]string(nil), ls...)
		m[i] = strings.Replace(m[i], from, to, 1)
		rewrite(t, path, m)
	}
	edit(11, `"epoch":1,`, `"epoch":2,`)
	_, err := Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 12 (seq 12): modified: sealed in epoch 2, but the record before it ended epoch 0 and named epoch 1 as the next: the record after an audit.epoch record is sealed in the epoch it names")

	edit(12, `"epoch":1,`, `"epoch":0,`)
	_, err = Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 13 (seq 13): reordered: sealed in epoch 0 after a record sealed in epoch 1: epochs only go up")
}

func TestVerifyTextOfAHostViewWithoutItsView(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	r := Record{Seq: 1, Prev: Genesis, Event: HostView, Outcome: OK}
	line, err := encode(&r, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, append(line, '\n'), 0o640)
	_, err = Verify([]string{path}, VerifyOptions{})
	wantText(t, err, path+" line 1 (seq 1): unknown view: a host.view record without a host_view member: every host.view record names the view it records")
}

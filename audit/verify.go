package audit

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// ProblemKind names what is wrong with a log, as verify reports it.
type ProblemKind string

// Kinds of Problem, as verify names them.
const (
	Modified     ProblemKind = "modified"     // a line's content does not match its hash or seal
	Missing      ProblemKind = "missing"      // records are absent: deleted, or a file removed
	Reordered    ProblemKind = "reordered"    // records are out of order
	Inserted     ProblemKind = "inserted"     // a record is in the log that the chain does not account for
	Truncated    ProblemKind = "truncated"    // a file ends inside a line, or the log ends before an anchor
	BadKey       ProblemKind = "bad key"      // the first sealed record does not verify under the key given
	ChainBroken  ProblemKind = "chain broken" // a record's prev is not the hash of the record before it
	NotJSON      ProblemKind = "not JSON"
	MissingStart ProblemKind = "missing start" // the log does not begin at the genesis record, or where --start says
	LateStart    ProblemKind = "late start"    // under a key: the genesis record is sealed in a later epoch than 0
	Unsealed     ProblemKind = "unsealed"      // under a key: the log's first record is not sealed, or none is
	UnknownView  ProblemKind = "unknown view"  // a record names a host view that is not the last host.view before it in its file
)

// Problem is the first thing wrong with a log, and where.
type Problem struct {
	File   string
	Line   int    // 0 when the problem is with no one line (an anchor not in the log)
	Seq    uint64 // 0 when the line has none
	Kind   ProblemKind
	Detail string
}

// Error reads "FILE line N (seq S): kind: detail", leaving out the line
// or the seq where the problem has none.
func (p *Problem) Error() string {
	where := p.File
	if p.Line > 0 {
		where += fmt.Sprintf(" line %d", p.Line)
	}
	if p.Seq > 0 {
		where += fmt.Sprintf(" (seq %d)", p.Seq)
	}
	return fmt.Sprintf("%s: %s: %s", where, p.Kind, p.Detail)
}

// VerifyOptions: Key is the initial (epoch 0) sealing key, nil to leave seals
// unchecked. Anchors are seq → hash pairs known from outside the host (a
// syslog collector has every record): they reveal records cut off the end,
// which no chain can show by itself.
//
// A log must start at its genesis record (seq 1, genesis prev), and under
// Key that record must be sealed in epoch 0: whoever holds the daemon's key
// file can start a new log in its epoch, and only the start tells it from
// the real one. Start accepts a later start: the seq and hash of the first
// record present, known from elsewhere (the oldest files were removed).
type VerifyOptions struct {
	Key     []byte
	Anchors map[uint64]string
	Start   *Anchor
}

// Anchor is a record known from elsewhere: its seq and hash.
type Anchor struct {
	Seq  uint64
	Hash string
}

// Summary describes a log that verified.
type Summary struct {
	Files, Records    int
	FirstSeq, LastSeq uint64
	First, Last       time.Time
	LastHash          string
	Sealed            bool // some records are sealed
	SealsChecked      bool // and their seals were verified
	FirstEpoch        uint64
	LastEpoch         uint64
	TornTails         int
	// StartGiven: the log starts at FirstSeq because VerifyOptions.Start
	// says so; what came before it was not checked.
	StartGiven bool
}

// chainFields are the parts of a record verify needs.
type chainFields struct {
	Time      time.Time `json:"time"`
	Seq       uint64    `json:"seq"`
	Event     Event     `json:"event"`
	Epoch     *uint64   `json:"epoch"`
	NextEpoch *uint64   `json:"next_epoch"`
	Prev      string    `json:"prev"`
}

type verifier struct {
	o   VerifyOptions
	sum Summary

	file   string
	lineNo int

	next    uint64 // seq expected next; 0 before the first record
	prev    string // hash of the last record
	plain   hash.Hash
	sealed  bool    // a sealed record was seen
	epoch   uint64  // of the last sealed record
	ended   *uint64 // next_epoch of the last record, if it ended its epoch
	key     []byte  // the key of keyEpoch, derived from o.Key
	keyAt   uint64
	checked bool // a seal was checked

	// A seq ahead of the expected one is judged with the line after it:
	// the expected seq right after means a swap, anything else a gap.
	ahead *Problem
	seen  map[uint64]seenAt // anchored seqs: their hash and where they are

	view string // host_view of the last host.view record in this file
}

// seenAt is an anchored record as the log has it.
type seenAt struct {
	hash string
	file string
	line int
}

// Verify checks files, in chain order, as one log. It returns the summary,
// or the first Problem found (or an I/O error).
func Verify(files []string, o VerifyOptions) (Summary, error) {
	v := &verifier{o: o, prev: Genesis, plain: sha256.New(), seen: map[uint64]seenAt{}}
	if o.Key != nil {
		v.key = append([]byte(nil), o.Key...)
	}
	for _, f := range files {
		if err := v.verifyFile(f); err != nil {
			return v.sum, err
		}
	}
	if v.ahead != nil {
		return v.sum, v.gap()
	}
	if o.Key != nil && !v.checked {
		return v.sum, &Problem{File: v.file, Line: v.lineNo, Kind: Unsealed,
			Detail: "no record in the log is sealed, so the key checked nothing: verify it without --key, or find the sealed log"}
	}
	v.sum.Files = len(files)
	v.sum.LastHash = v.prev
	v.sum.SealsChecked = v.sealed && v.o.Key != nil
	for seq, want := range o.Anchors {
		got, ok := v.seen[seq]
		switch {
		case !ok && seq > v.sum.LastSeq:
			return v.sum, &Problem{File: v.file, Line: v.lineNo, Seq: v.sum.LastSeq, Kind: Truncated,
				Detail: fmt.Sprintf("the log ends at seq %d but an anchor names seq %d: records were cut off the end", v.sum.LastSeq, seq)}
		case !ok:
			return v.sum, &Problem{File: files[0], Seq: seq, Kind: Missing,
				Detail: fmt.Sprintf("an --anchor names seq %d, but the log starts at seq %d%s: give anchors at or after the start", seq, v.sum.FirstSeq, asStartSays(v.sum.StartGiven))}
		case got.hash != want:
			return v.sum, &Problem{File: got.file, Line: got.line, Seq: seq, Kind: Modified,
				Detail: fmt.Sprintf("its hash is %s, but an --anchor names seq %d with hash %s: the record was changed (the chain rebuilt after it), or the anchor is wrong", got.hash, seq, want)}
		}
	}
	return v.sum, nil
}

// verifyFile checks one file of the log, continuing the chain from the
// file before it.
func (v *verifier) verifyFile(path string) error {
	v.file, v.lineNo, v.view = path, 0, ""
	err := eachBatch(path, func(b *batch) { b.invalid = firstInvalid(b.lines) }, v.batch)
	if err == errLongLine {
		// The lines read ahead of it are not counted: no line number.
		return &Problem{File: path, Kind: Modified, Detail: longLine}
	}
	return err
}

// longLine is the detail of a line over maxLine.
const longLine = "a line is longer than 16 MiB, the most verify reads as one record: hostpass never writes one"

// firstInvalid returns the index of the first line that is not JSON, or
// reads two ways, or -1. Checking JSON costs three times what the chain
// does, so it runs on the batches read ahead, on every core, while the
// chain is checked in order.
func firstInvalid(lines [][]byte) int {
	for i, l := range lines {
		if !json.Valid(l) || readsTwoWays(l) {
			return i
		}
	}
	return -1
}

func (v *verifier) batch(b *batch) error {
	invalid := b.invalid
	for i, line := range b.lines {
		v.lineNo++
		if i == len(b.lines)-1 && !b.complete {
			_, seq, _, _ := fastHead(line) // 0 if the cut reaches into seq
			return v.problem(seq, Truncated, fmt.Sprintf("the last line is incomplete (%d bytes, no newline): a torn write or a cut file", len(line)))
		}
		if i == invalid {
			if json.Valid(line) {
				return v.readsTwoWays(line)
			}
			return v.problem(0, NotJSON, notJSON(json.Unmarshal(line, new(chainFields))))
		}
		if err := v.line(line); err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) problem(seq uint64, kind ProblemKind, detail string) *Problem {
	return &Problem{File: v.file, Line: v.lineNo, Seq: seq, Kind: kind, Detail: detail}
}

func asStartSays(given bool) string {
	if given {
		return ", as --start says"
	}
	return ""
}

// notRecord says why a line that is JSON does not read as a record, and
// what hostpass writes instead.
func notRecord(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("the line is JSON but not a record: its %s member is a JSON %s, where hostpass writes %s", te.Field, te.Value, jsonKind(te.Type))
	}
	return fmt.Sprintf("the line is JSON but not a record (%v): hostpass writes time as an RFC 3339 string, seq, epoch and next_epoch as whole numbers, event, prev, host_view and base_view as strings", err)
}

// jsonKind names what a Go type holds as JSON: "a string".
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	}
	return "a " + t.String()
}

// notJSON says why a line is not JSON, and what a line of the log is.
func notJSON(err error) string {
	return fmt.Sprintf("the line is not JSON (%v): each line of the log is one JSON record, ending in its \"hash\" member", err)
}

// readsTwoWays reports a line that verify's fast reader and encoding/json
// read differently (see readsTwoWays in fastparse.go), naming what each
// reads where they differ. The seq is the fast reader's: the one where
// hostpass writes it.
func (v *verifier) readsTwoWays(line []byte) *Problem {
	body, _, _ := splitHash(line)
	fast, _ := fastFields(body)
	var slow chainFields
	differ := ""
	if err := json.Unmarshal(line, &slow); err == nil {
		differ = differs(fast, slow)
	}
	return v.problem(fast.Seq, Modified, "the line reads two ways: it has a second member that encoding/json reads as time, seq, event, epoch, next_epoch or prev (json matches names in any case and keeps the last), so json can read it differently from verify's fast reader, which reads them where hostpass writes them"+differ+"; hostpass writes each of these members once, so the line was edited")
}

// differs says what a (the fast reader) and b (json) read differently:
// " (fast reader: seq 10; json: seq 99)", or "" when they read the same.
func differs(a, b chainFields) string {
	var fast, slow []string
	add := func(name string, x, y any) {
		if x != y {
			fast = append(fast, fmt.Sprintf("%s %v", name, x))
			slow = append(slow, fmt.Sprintf("%s %v", name, y))
		}
	}
	epoch := func(e *uint64) any {
		if e == nil {
			return "none"
		}
		return *e
	}
	add("time", a.Time.Format(time.RFC3339Nano), b.Time.Format(time.RFC3339Nano))
	add("seq", a.Seq, b.Seq)
	add("event", a.Event, b.Event)
	add("epoch", epoch(a.Epoch), epoch(b.Epoch))
	add("next_epoch", epoch(a.NextEpoch), epoch(b.NextEpoch))
	add("prev", short(a.Prev), short(b.Prev))
	if fast == nil {
		return ""
	}
	return fmt.Sprintf(" (fast reader: %s; json: %s)", strings.Join(fast, ", "), strings.Join(slow, ", "))
}

func (v *verifier) gap() *Problem {
	p := v.ahead
	p.Kind = Missing
	if v.next == p.Seq-1 {
		p.Detail = fmt.Sprintf("seq %d is absent before this line", v.next)
	} else {
		p.Detail = fmt.Sprintf("seq %d to %d are absent before this line", v.next, p.Seq-1)
	}
	if p.Line == 1 {
		p.Detail += fmt.Sprintf(" (it is the first line of %s: a rotated file removed?)", filepath.Base(p.File))
	}
	return p
}

func (v *verifier) line(line []byte) error {
	body, claimed, ok := splitHash(line)
	f, fast := fastFields(body)
	if !fast {
		f = chainFields{}
		if err := json.Unmarshal(line, &f); err != nil {
			return v.problem(0, NotJSON, notRecord(err))
		}
	}
	if !ok {
		return v.problem(f.Seq, Modified, `the line does not end with a "hash" member: every record ends with "hash", the SHA-256 or seal of the rest of its line`)
	}
	if v.ahead != nil {
		if f.Seq == v.next {
			p := v.ahead
			p.Kind = Reordered
			p.Detail = fmt.Sprintf("seq %d comes before seq %d (line %d)", p.Seq, f.Seq, v.lineNo)
			return p
		}
		return v.gap()
	}
	if v.next == 0 {
		if err := v.start(f, claimed); err != nil {
			return err
		}
	}
	switch {
	case v.next != 0 && f.Seq > v.next:
		v.ahead = v.problem(f.Seq, "", "")
		return nil
	case v.next != 0 && f.Seq < v.next:
		if f.Seq == v.next-1 {
			return v.problem(f.Seq, Inserted, fmt.Sprintf("seq %d appears twice (lines %d and %d): one of them was inserted", f.Seq, v.lineNo-1, v.lineNo))
		}
		return v.problem(f.Seq, Reordered, fmt.Sprintf("seq %d comes after seq %d", f.Seq, v.next-1))
	}
	if f.Prev != v.prev {
		return v.problem(f.Seq, ChainBroken, fmt.Sprintf("prev %s is not the hash of seq %d (%s): a record was replaced or inserted before it", short(f.Prev), f.Seq-1, short(v.prev)))
	}
	if err := v.seal(f, body, claimed); err != nil {
		return err
	}
	if err := v.checkView(f, line); err != nil {
		return err
	}
	if _, ok := v.o.Anchors[f.Seq]; ok {
		v.seen[f.Seq] = seenAt{claimed, v.file, v.lineNo}
	}
	v.prev, v.next = claimed, f.Seq+1
	v.sum.Records++
	if v.sum.FirstSeq == 0 {
		v.sum.FirstSeq, v.sum.First = f.Seq, f.Time
	}
	v.sum.LastSeq, v.sum.Last = f.Seq, f.Time
	if f.Event == TornTail {
		v.sum.TornTails++
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"path/filepath"
	"time"
)

// Kinds of Problem, as verify names them.
const (
	Modified     = "modified"     // a line's content does not match its hash or seal
	Missing      = "missing"      // records are absent: deleted, or a file removed
	Reordered    = "reordered"    // records are out of order
	Inserted     = "inserted"     // a record is in the log that the chain does not account for
	Truncated    = "truncated"    // a file ends inside a line, or the log ends before an anchor
	BadKey       = "bad key"      // the first sealed record does not verify under the key given
	ChainBroken  = "chain broken" // a record's prev is not the hash of the record before it
	NotJSON      = "not JSON"
	MissingStart = "missing start" // the log does not begin at the genesis record, or where --start says
	LateStart    = "late start"    // under a key: the genesis record is sealed in a later epoch than 0
	Unsealed     = "unsealed"      // under a key: the log's first record is not sealed, or none is
	UnknownView  = "unknown view"  // a record names a host view that is not the last host.view before it in its file
)

// Problem is the first thing wrong with a log, and where.
type Problem struct {
	File   string
	Line   int
	Seq    uint64 // 0 when the line has none
	Kind   string
	Detail string
}

func (p *Problem) Error() string {
	seq := "seq ?"
	if p.Seq > 0 {
		seq = fmt.Sprintf("seq %d", p.Seq)
	}
	return fmt.Sprintf("%s line %d (%s): %s: %s", p.File, p.Line, seq, p.Kind, p.Detail)
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
	Event     string    `json:"event"`
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
	seen  map[uint64]string // hashes of anchored seqs

	view string // host_view of the last host.view record in this file
}

// Verify checks files, in chain order, as one log. It returns the summary,
// or the first Problem found (or an I/O error).
func Verify(files []string, o VerifyOptions) (Summary, error) {
	v := &verifier{o: o, prev: Genesis, plain: sha256.New(), seen: map[uint64]string{}}
	if o.Key != nil {
		v.key = append([]byte(nil), o.Key...)
	}
	for _, f := range files {
		if err := v.file1(f); err != nil {
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
			return v.sum, &Problem{File: v.file, Seq: seq, Kind: Missing, Detail: fmt.Sprintf("anchored seq %d is not in the log", seq)}
		case got != want:
			return v.sum, &Problem{File: v.file, Seq: seq, Kind: Modified,
				Detail: fmt.Sprintf("seq %d has hash %s, the anchor says %s", seq, got, want)}
		}
	}
	return v.sum, nil
}

func (v *verifier) file1(path string) error {
	v.file, v.lineNo, v.view = path, 0, ""
	err := eachBatch(path, func(b *batch) { b.invalid = firstInvalid(b.lines) }, v.batch)
	if err == errLongLine {
		return v.problem(0, Modified, err.Error())
	}
	return err
}

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
			return v.problem(0, Truncated, fmt.Sprintf("the last line is incomplete (%d bytes, no newline): a torn write or a cut file", len(line)))
		}
		if i == invalid {
			var f chainFields
			err := json.Unmarshal(line, &f)
			if json.Valid(line) {
				return v.problem(f.Seq, Modified, "a member reads as a second time, seq, event, epoch or prev: the line reads two ways, and hostpass never writes one")
			}
			return v.problem(f.Seq, NotJSON, fmt.Sprint(err))
		}
		if err := v.line(line); err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) problem(seq uint64, kind, detail string) *Problem {
	return &Problem{File: v.file, Line: v.lineNo, Seq: seq, Kind: kind, Detail: detail}
}

func (v *verifier) gap() *Problem {
	p := v.ahead
	p.Kind = Missing
	p.Detail = fmt.Sprintf("seq %d to %d are absent before this line", v.next, p.Seq-1)
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
			return v.problem(0, NotJSON, err.Error())
		}
	}
	if !ok {
		return v.problem(f.Seq, Modified, errNoHash.Error())
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
		v.seen[f.Seq] = claimed
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

// start checks the first record: the genesis record, sealed in epoch 0
// under a key, or the start the user gave.
func (v *verifier) start(f chainFields, claimed string) error {
	const say = "if you know from elsewhere (a syslog collector, an earlier verify) where the log starts, pass --start SEQ:HASH with that record's seq and hash"
	if s := v.o.Start; s != nil {
		switch {
		case f.Seq != s.Seq:
			return v.problem(f.Seq, MissingStart, fmt.Sprintf("the log starts at seq %d, not at seq %d as --start says", f.Seq, s.Seq))
		case claimed != s.Hash:
			return v.problem(f.Seq, Modified, fmt.Sprintf("the first record, seq %d, has hash %s, not %s as --start says", f.Seq, claimed, s.Hash))
		case v.o.Key != nil && f.Epoch == nil:
			return v.problem(f.Seq, Unsealed, "the log starts with a record that is not sealed: under --key it must start sealed")
		}
		v.prev, v.sum.StartGiven = f.Prev, true
		return nil
	}
	switch {
	case f.Prev != Genesis && f.Seq > 1:
		return v.problem(f.Seq, MissingStart, fmt.Sprintf("the log starts at seq %d, not at the genesis record: its oldest files are gone, or it was started elsewhere; %s", f.Seq, say))
	case f.Seq != 1 || f.Prev != Genesis:
		return v.problem(f.Seq, Modified, "the first record must be seq 1 with the genesis prev")
	case v.o.Key != nil && f.Epoch == nil:
		return v.problem(f.Seq, Unsealed, "the log starts with a record that is not sealed: under --key a log must start sealed in epoch 0, since anyone can write plain records (verify a plain log without --key)")
	case v.o.Key != nil && *f.Epoch != 0:
		return v.problem(f.Seq, LateStart, fmt.Sprintf("the genesis record is sealed in epoch %d, not epoch 0: a log starts in epoch 0, so this one was started with a later key, as whoever holds the daemon's key file can do; %s", *f.Epoch, say))
	}
	return nil
}

// seal checks the record's hash, and for a sealed record its epoch.
func (v *verifier) seal(f chainFields, body []byte, claimed string) error {
	if f.Epoch == nil {
		if v.sealed {
			return v.problem(f.Seq, Modified, "an unsealed record in a sealed log: a sealed log never goes back to plain hashes")
		}
		if lineHash(v.plain, body) != claimed {
			return v.problem(f.Seq, Modified, "the line does not match its hash")
		}
		return nil
	}
	e := *f.Epoch
	switch {
	case !v.sealed:
		v.sum.FirstEpoch = e
	case e < v.epoch:
		return v.problem(f.Seq, Reordered, fmt.Sprintf("epoch %d after epoch %d", e, v.epoch))
	case v.ended != nil && e != *v.ended:
		return v.problem(f.Seq, Modified, fmt.Sprintf("sealed in epoch %d, but epoch %d ended with the record before it and the next is %d", e, v.epoch, *v.ended))
	case v.ended == nil && e != v.epoch:
		return v.problem(f.Seq, Missing, fmt.Sprintf("epoch %d follows epoch %d without its audit.epoch record: records were removed, or forged with a later key", e, v.epoch))
	}
	if f.NextEpoch != nil && *f.NextEpoch != e+1 {
		return v.problem(f.Seq, Modified, fmt.Sprintf("epoch %d ends with next_epoch %d, but the daemon steps one epoch at a time: it must be %d", e, *f.NextEpoch, e+1))
	}
	v.sealed, v.epoch, v.ended = true, e, f.NextEpoch
	v.sum.Sealed, v.sum.LastEpoch = true, e
	if v.key == nil {
		return nil
	}
	if e < v.keyAt {
		return v.problem(f.Seq, Reordered, fmt.Sprintf("epoch %d is older than a verified one", e))
	}
	if e-v.keyAt > maxKeySteps {
		return v.problem(f.Seq, Modified, fmt.Sprintf("sealed in epoch %d, %d key steps past epoch %d: verify derives at most %d (each takes an audit.epoch record)", e, e-v.keyAt, v.keyAt, maxKeySteps))
	}
	for v.keyAt < e {
		v.key = NextKey(v.key)
		v.keyAt++
	}
	if lineHash(hmac.New(sha256.New, v.key), body) != claimed {
		if !v.checked {
			return v.problem(f.Seq, BadKey, fmt.Sprintf("the first sealed record (epoch %d) does not verify under this key: wrong key, or the record was changed", e))
		}
		return v.problem(f.Seq, Modified, fmt.Sprintf("the seal does not verify under epoch %d's key: changed, or forged without that key", e))
	}
	v.checked = true
	return nil
}

// checkView checks that a record names the host view it saw as the last
// host.view record before it in its file, and that a host.view written as a
// change names that view as its base: the log writes them so, and a record
// naming any other view claims an exposure no record in the file shows.
func (v *verifier) checkView(f chainFields, line []byte) error {
	var r struct {
		Event    string `json:"event"`
		HostView string `json:"host_view"`
		BaseView string `json:"base_view"`
	}
	ref, fast := fastViewRef(line)
	switch {
	case fast && f.Event != HostView:
		r.Event, r.HostView = f.Event, ref
	default:
		if err := json.Unmarshal(line, &r); err != nil {
			return v.problem(f.Seq, NotJSON, err.Error())
		}
	}
	if r.Event == HostView {
		switch {
		case r.HostView == "":
			return v.problem(f.Seq, UnknownView, "a host.view record without a host_view")
		case r.BaseView != "" && r.BaseView != v.view:
			return v.problem(f.Seq, UnknownView, fmt.Sprintf("the view is written as a change from view %s, but the last view before it in this file is %s", short(r.BaseView), viewName(v.view)))
		}
		v.view = r.HostView
		return nil
	}
	if r.HostView != "" && r.HostView != v.view {
		return v.problem(f.Seq, UnknownView, fmt.Sprintf("the record names host view %s, but the last view before it in this file is %s: the view it names is in no record before it", short(r.HostView), viewName(v.view)))
	}
	return nil
}

// fastViewRef reads the view a record names from a line laid out as the log
// writes it, without decoding it (decoding every join tripled verify's
// time). It reports false unless the line is plain ASCII without escapes
// and has at most one key that json could read as host_view or base_view
// (any case), and that one is exactly "host_view", in the outermost
// object, with a string value: json then reads that same value. host.view
// records are always decoded.
func fastViewRef(line []byte) (string, bool) {
	if bytes.IndexByte(line, '\\') >= 0 || !isASCII(line) {
		return "", false
	}
	at, n := -1, 0
	for i := 0; ; {
		k := bytes.IndexByte(line[i:], '_')
		if k < 0 {
			break
		}
		i += k + 1
		if i+5 <= len(line) && bytes.EqualFold(line[i:i+5], []byte(`view"`)) {
			at, n = i-1, n+1
		}
	}
	switch {
	case n == 0:
		return "", true
	case n > 1:
		return "", false
	}
	const key = `"host_view":"`
	start := at - len(`"host`)
	if start < 0 || !bytes.HasPrefix(line[start:], []byte(key)) || !topLevel(line, start) {
		return "", false
	}
	val := line[start+len(key):]
	end := bytes.IndexByte(val, '"')
	if end < 0 {
		return "", false
	}
	return string(val[:end]), true
}

// topLevel reports whether the string starting at line[at] is a member of
// the outermost object, in a line without escapes.
func topLevel(line []byte, at int) bool {
	depth, inString := 0, false
	for _, c := range line[:at] {
		switch {
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		}
	}
	return depth == 1 && !inString
}

func viewName(id string) string {
	if id == "" {
		return "none"
	}
	return short(id)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

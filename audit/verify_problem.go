package audit

// What verify reports: the kinds of problem, and how each reads.

import (
	"encoding/json"
	"errors"
	"fmt"
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

	// Signed logs (--pubkey, --checkpoint).
	Unsigned      ProblemKind = "unsigned"          // under --pubkey: a record without an epoch, an audit.epoch without key_cert, no checkpoint at all
	BadCert       ProblemKind = "bad certification" // a key certification does not follow from the keys before it
	BadCheckpoint ProblemKind = "bad checkpoint"    // a checkpoint's signature, key, size or root is not what the log holds
	CutTail       ProblemKind = "cut tail"          // a collected checkpoint commits to records the log no longer has
	Rewritten     ProblemKind = "rewritten"         // a collected checkpoint's root disagrees with the log's records
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

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

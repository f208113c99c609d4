package audit

import (
	"bytes"
	"time"
)

// fastFields reads the chain fields straight from a line laid out as the log
// writes it: {"time":"…","seq":N,"event":"…", … ,"epoch":N,"next_epoch":N,"prev":"…"
// (body, the hash member already cut off). Reading a million lines this way
// takes a fraction of what encoding/json needs; a line laid out any other way
// (edited by hand, say) makes it report false and the caller decodes it
// properly.
func fastFields(body []byte) (f chainFields, ok bool) {
	if f.Time, f.Seq, f.Event, ok = fastHead(body); !ok {
		return f, false
	}
	f.Prev, f.Epoch, f.NextEpoch, ok = fastEnd(body)
	return f, ok
}

// fastHead reads time, seq and event from the start of a line. It needs only
// the line's first bytes, so it also reads the head of a line too long to
// hold.
func fastHead(b []byte) (t time.Time, seq uint64, event string, ok bool) {
	rest, ok := cutPrefix(b, `{"time":"`)
	if !ok {
		return t, 0, "", false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return t, 0, "", false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:i]))
	if err != nil {
		return t, 0, "", false
	}
	if rest, ok = cutPrefix(rest[i+1:], `,"seq":`); !ok {
		return t, 0, "", false
	}
	if seq, rest, ok = digits(rest); !ok {
		return t, 0, "", false
	}
	if rest, ok = cutPrefix(rest, `,"event":"`); !ok {
		return t, 0, "", false
	}
	if i = bytes.IndexByte(rest, '"'); i < 0 {
		return t, 0, "", false
	}
	return t, seq, string(rest[:i]), true
}

// fastEnd reads ,"epoch":N,"next_epoch":N,"prev":"<64 hex>" from the end of
// a line's body (its hash member cut off). It needs only the last few
// hundred bytes.
func fastEnd(body []byte) (prev string, epoch, nextEpoch *uint64, ok bool) {
	const prevMember = `,"prev":"`
	n := len(prevMember) + 64 + 1
	if len(body) < n || !bytes.HasPrefix(body[len(body)-n:], []byte(prevMember)) || body[len(body)-1] != '"' {
		return "", nil, nil, false
	}
	prev = string(body[len(body)-n+len(prevMember) : len(body)-1])
	head := body[:len(body)-n]
	if v, h, ok := trailingNumber(head, `,"next_epoch":`); ok {
		nextEpoch, head = &v, h
	}
	if v, _, ok := trailingNumber(head, `,"epoch":`); ok {
		epoch = &v
	}
	return prev, epoch, nextEpoch, true
}

func cutPrefix(b []byte, p string) ([]byte, bool) {
	if !bytes.HasPrefix(b, []byte(p)) {
		return b, false
	}
	return b[len(p):], true
}

func digits(b []byte) (uint64, []byte, bool) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 20; i++ {
		v = v*10 + uint64(b[i]-'0')
	}
	return v, b[i:], i > 0
}

// trailingNumber reads `<member><digits>` at the end of b.
func trailingNumber(b []byte, member string) (uint64, []byte, bool) {
	i := len(b)
	for i > 0 && b[i-1] >= '0' && b[i-1] <= '9' {
		i--
	}
	if i == len(b) || !bytes.HasSuffix(b[:i], []byte(member)) {
		return 0, b, false
	}
	v, _, _ := digits(b[i:])
	return v, b[:i-len(member)], true
}

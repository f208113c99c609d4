package audit

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf8"
)

// fastFields reads the chain fields straight from a line laid out as the log
// writes it: {"time":"…","seq":N,"event":"…", … ,"epoch":N,"next_epoch":N,"prev":"…"
// (body, the hash member already cut off). Reading a million lines this way
// takes a fraction of what encoding/json needs; a line laid out any other way
// (edited by hand, say) makes it report false and the caller decodes it
// properly. It refuses escapes and numbers out of range, so that whenever it
// reports true on a line that is JSON and does not read two ways
// (readsTwoWays, which verify checks ahead on every core), encoding/json
// reads the same fields from it. FuzzFastFields checks that.
func fastFields(body []byte) (chainFields, bool) {
	f, _, ok := readFields(body)
	return f, ok
}

// readsTwoWays reports whether line, laid out as the log writes it, has a
// member between event and the members read from the end that json would
// read as a chain field (json matches keys in any case, and keeps the last):
// fastFields and encoding/json would then read the line differently. The
// log never writes such a line.
func readsTwoWays(line []byte) bool {
	cut := len(line) - hashSuffixLen
	if cut < 0 || !bytes.HasPrefix(line[cut:], []byte(hashMember)) {
		return false // no hash where the log puts it: verify reports that
	}
	_, middle, ok := readFields(line[:cut])
	return ok && chainKeyIn(middle)
}

// readFields is fastFields, and returns the members between event and
// those read from the end.
func readFields(body []byte) (f chainFields, middle []byte, ok bool) {
	var rest, head []byte
	if f.Time, f.Seq, f.Event, rest, ok = readHead(body); !ok {
		return f, nil, false
	}
	if f.Prev, f.Epoch, f.NextEpoch, head, ok = readEnd(body); !ok {
		return f, nil, false
	}
	if from := len(body) - len(rest); len(head) >= from {
		return f, head[from:], true
	}
	return f, nil, false
}

// fastHead reads time, seq and event from the start of a line. It needs only
// the line's first bytes, so it also reads the head of a line too long to
// hold.
func fastHead(b []byte) (t time.Time, seq uint64, event Event, ok bool) {
	t, seq, event, _, ok = readHead(b)
	return t, seq, event, ok
}

// readHead is fastHead, and returns what follows event.
func readHead(b []byte) (t time.Time, seq uint64, event Event, rest []byte, ok bool) {
	rest, ok = cutPrefix(b, `{"time":"`)
	if !ok {
		return t, 0, "", nil, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || t.UnmarshalText(rest[:i]) != nil { // as strict as json's decoding of a time
		return t, 0, "", nil, false
	}
	if rest, ok = cutPrefix(rest[i+1:], `,"seq":`); !ok {
		return t, 0, "", nil, false
	}
	if seq, rest, ok = digits(rest); !ok {
		return t, 0, "", nil, false
	}
	if rest, ok = cutPrefix(rest, `,"event":"`); !ok {
		return t, 0, "", nil, false
	}
	if i = bytes.IndexByte(rest, '"'); i < 0 {
		return t, 0, "", nil, false
	}
	if bytes.IndexByte(rest[:i], '\\') >= 0 || !utf8.Valid(rest[:i]) {
		return t, 0, "", nil, false // json would unescape or replace bytes
	}
	return t, seq, Event(rest[:i]), rest[i+1:], true
}

// fastEnd reads ,"epoch":N,"next_epoch":N,"prev":"<64 hex>" from the end of
// a line's body (its hash member cut off). It needs only the last few
// hundred bytes.
func fastEnd(body []byte) (prev string, epoch, nextEpoch *uint64, ok bool) {
	prev, epoch, nextEpoch, _, ok = readEnd(body)
	return prev, epoch, nextEpoch, ok
}

// readEnd is fastEnd, and returns what precedes the members it read.
func readEnd(body []byte) (prev string, epoch, nextEpoch *uint64, head []byte, ok bool) {
	const prevMember = `,"prev":"`
	n := len(prevMember) + 64 + 1
	if len(body) < n || !bytes.HasPrefix(body[len(body)-n:], []byte(prevMember)) || body[len(body)-1] != '"' {
		return "", nil, nil, nil, false
	}
	p := body[len(body)-n+len(prevMember) : len(body)-1]
	if bytes.IndexByte(p, '"') >= 0 || bytes.IndexByte(p, '\\') >= 0 || !isASCII(p) {
		return "", nil, nil, nil, false // not one string, or one json would unescape
	}
	head = body[:len(body)-n]
	if v, h, ok := trailingNumber(head, `,"next_epoch":`); ok {
		nextEpoch, head = &v, h
	}
	if v, h, ok := trailingNumber(head, `,"epoch":`); ok {
		epoch, head = &v, h
	}
	return string(p), epoch, nextEpoch, head, true
}

// chainKeys are the members of chainFields, which json matches whatever
// their case.
var chainKeys = [][]byte{[]byte("time"), []byte("seq"), []byte("event"), []byte("epoch"), []byte("next_epoch"), []byte("prev")}

// chainKeyIn reports whether b, a run of top-level JSON members, has a key
// json might read as a chain field: one of chainKeys in any case, or a key
// with an escape or beyond ASCII (json folds ſ to s). Keys of nested
// objects (options, labels) do not count. A line of plain ASCII with no key
// of a chain field's name at any depth, as the log writes nearly every
// line, is cleared by jumping from colon to colon; the others are scanned
// in full, with their depth.
func chainKeyIn(b []byte) bool {
	if bytes.IndexByte(b, '\\') >= 0 || !isASCII(b) {
		return topLevelChainKey(b)
	}
	for i := 0; ; {
		k := bytes.IndexByte(b[i:], ':')
		if k < 0 {
			return false
		}
		end := i + k - 1 // the closing quote of a key, if this ends one
		i += k + 1
		if end < 3 || b[end] != '"' {
			continue // a colon in a string (no escaped quote: no backslash)
		}
		for _, key := range chainKeys {
			if start := end - len(key); start > 0 && b[start-1] == '"' && bytes.EqualFold(b[start:end], key) {
				return topLevelChainKey(b)
			}
		}
	}
}

// isASCII reports whether b is all ASCII, eight bytes at a time.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// escapedAt reports whether the quote at b[i] is escaped.
func escapedAt(b []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// mayBeChainKey reports whether json might read key as a chain field.
func mayBeChainKey(key []byte) bool {
	for _, c := range key {
		if c == '\\' || c >= utf8.RuneSelf {
			return true
		}
	}
	for _, k := range chainKeys {
		if len(key) == len(k) && bytes.EqualFold(key, k) {
			return true
		}
	}
	return false
}

// topLevelChainKey is chainKeyIn's full scan, keeping track of depth.
func topLevelChainKey(b []byte) bool {
	depth := 0
	for {
		q := bytes.IndexByte(b, '"')
		if q < 0 {
			return false
		}
		for _, c := range b[:q] {
			switch c {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
		}
		s := b[q+1:]
		end := 0
		for {
			k := bytes.IndexByte(s[end:], '"')
			if k < 0 {
				return true // an unterminated string: let json judge the line
			}
			end += k
			if !escapedAt(s, end) {
				break
			}
			end++
		}
		str := s[:end]
		b = s[end+1:]
		if depth == 0 && len(b) > 0 && b[0] == ':' && mayBeChainKey(str) {
			return true
		}
	}
}

func cutPrefix(b []byte, p string) ([]byte, bool) {
	if !bytes.HasPrefix(b, []byte(p)) {
		return b, false
	}
	return b[len(p):], true
}

// digits reads a JSON unsigned integer that fits in a uint64.
func digits(b []byte) (uint64, []byte, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i > 1 && b[0] == '0' {
		return 0, b, false
	}
	v, err := strconv.ParseUint(string(b[:i]), 10, 64)
	return v, b[i:], err == nil
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
	v, _, ok := digits(b[i:])
	return v, b[:i-len(member)], ok
}

package audit

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// fastFields reads the chain fields straight from a line laid out as the log
// writes it: {"time":"…","seq":N,"event":"…", … ,"epoch":N,"next_epoch":N,"prev":"…"
// (body, the hash member already cut off). Reading a million lines this way
// takes a fraction of what encoding/json needs; a line laid out any other way
// (edited by hand, say) makes it report false and the caller decodes it
// properly. Whenever it reports true on a line that is JSON, encoding/json
// reads the same fields from it (FuzzFastFields checks that): so it refuses
// escapes, numbers out of range, and any other member json would take for a
// chain field (json matches keys case-insensitively and keeps the last).
func fastFields(body []byte) (f chainFields, ok bool) {
	rest, ok := cutPrefix(body, `{"time":"`)
	if !ok {
		return f, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return f, false
	}
	if f.Time.UnmarshalText(rest[:i]) != nil { // as strict as json's decoding of a time
		return f, false
	}
	if rest, ok = cutPrefix(rest[i+1:], `,"seq":`); !ok {
		return f, false
	}
	if f.Seq, rest, ok = digits(rest); !ok {
		return f, false
	}
	if rest, ok = cutPrefix(rest, `,"event":"`); !ok {
		return f, false
	}
	if i = bytes.IndexByte(rest, '"'); i < 0 {
		return f, false
	}
	if bytes.IndexByte(rest[:i], '\\') >= 0 || !utf8.Valid(rest[:i]) {
		return f, false // json would unescape or replace bytes
	}
	f.Event = string(rest[:i])
	rest = rest[i+1:]

	// From the end: ,"prev":"<64 hex>" then, before it, the epoch members.
	const prevMember = `,"prev":"`
	n := len(prevMember) + 64 + 1
	if len(body) < n || !bytes.HasPrefix(body[len(body)-n:], []byte(prevMember)) || body[len(body)-1] != '"' {
		return f, false
	}
	prev := body[len(body)-n+len(prevMember) : len(body)-1]
	if !isHex(prev) {
		return f, false
	}
	f.Prev = string(prev)
	head := body[:len(body)-n]
	if v, h, ok := trailingNumber(head, `,"next_epoch":`); ok {
		f.NextEpoch, head = &v, h
	}
	if v, h, ok := trailingNumber(head, `,"epoch":`); ok {
		f.Epoch, head = &v, h
	}
	// Between event and the members read from the end, no other key may be
	// one json would read as a chain field.
	if len(head) < len(body)-len(rest) || chainKeyIn(head[len(body)-len(rest):]) {
		return f, false
	}
	return f, true
}

// chainKeys are the members of chainFields, which json matches whatever
// their case.
var chainKeys = [][]byte{[]byte("time"), []byte("seq"), []byte("event"), []byte("epoch"), []byte("next_epoch"), []byte("prev")}

// chainKeyIn reports whether b, a run of top-level JSON members, has a key
// json might read as a chain field: one of chainKeys in any case, or a key
// with an escape or beyond ASCII (json folds ſ to s). Keys of nested
// objects (options, labels) do not count. Most lines have no key that
// looks like one at any depth, which a jump from `":` to `":` shows at a
// fraction of a full scan; only the others are scanned with their depth.
func chainKeyIn(b []byte) bool {
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte(`":`))
		if k < 0 {
			return false
		}
		end := i + k // the closing quote of a key, unless escaped
		i = end + 2
		if escapedAt(b, end) {
			continue
		}
		// An escaped chain key is at most 60 bytes (\uXXXX for each of
		// next_epoch's 10 characters).
		for j := end - 1; j >= 0 && j >= end-61; j-- {
			if b[j] == '"' && !escapedAt(b, j) {
				if mayBeChainKey(b[j+1 : end]) {
					return topLevelChainKey(b)
				}
				break
			}
		}
	}
}

// escapedAt reports whether the quote at b[i] is escaped.
func escapedAt(b []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

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

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
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

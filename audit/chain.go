package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
)

// The chain: every line ends with `,"hash":"<64 hex>"}`. The hash covers the
// line's bytes before that member, closed with `}` (the record as encoded
// without its hash), and that encoding includes `prev`, the hash of the line
// before. Hashing the exact bytes, not a re-encoding, leaves nothing to
// canonicalise. In a plain log the hash is SHA-256; in a sealed log it is
// HMAC-SHA256 under the key of the record's epoch.

// Genesis is the prev of a log's first record.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

const hashMember = `,"hash":"`

// hashSuffixLen is the length of `,"hash":"<64 hex>"}`.
const hashSuffixLen = len(hashMember) + 64 + 2

// encode returns rec's line, without the newline, and sets rec.Hash.
func encode(rec *Record, key []byte) ([]byte, error) {
	return newLineEncoder(nil, key).line(rec)
}

// lineEncoder appends lines to one buffer: a write's whole batch is
// encoded into it, without a buffer or a hasher per record.
type lineEncoder struct {
	w   sliceWriter
	enc *json.Encoder // encodes as json.Marshal does, into w, then a newline
	h   hash.Hash     // hasher(key)
	sum []byte        // h's sum, reused
}

// sliceWriter appends what is written to it to b.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func newLineEncoder(buf, key []byte) *lineEncoder {
	e := &lineEncoder{w: sliceWriter{buf}, h: hasher(key)}
	e.enc = json.NewEncoder(&e.w)
	return e
}

// appendLine appends rec's line, without the newline, to the buffer, sets
// rec.Hash, and returns the buffer.
func (e *lineEncoder) appendLine(rec *Record) ([]byte, error) {
	start := len(e.w.b)
	rec.Hash = ""
	if err := e.enc.Encode(rec); err != nil {
		e.w.b = e.w.b[:start]
		return e.w.b, err
	}
	body := e.w.b[start : len(e.w.b)-1] // Encode ends it with a newline
	e.h.Reset()
	e.h.Write(body)
	e.sum = e.h.Sum(e.sum[:0])
	b := append(e.w.b[:start+len(body)-1], hashMember...) // the body's closing brace gives way to the hash
	at := len(b)
	b = hex.AppendEncode(b, e.sum)
	rec.Hash = string(b[at:])
	e.w.b = append(b, '"', '}')
	return e.w.b, nil
}

// line is appendLine's line alone.
func (e *lineEncoder) line(rec *Record) ([]byte, error) {
	start := len(e.w.b)
	b, err := e.appendLine(rec)
	if err != nil {
		return nil, err
	}
	return b[start:], nil
}

// splitHash returns the part of line the hash covers (without the closing
// brace, which the caller adds) and the hash the line claims.
func splitHash(line []byte) (body []byte, sum string, ok bool) {
	if len(line) < hashSuffixLen+2 {
		return nil, "", false
	}
	cut := len(line) - hashSuffixLen
	suffix := line[cut:]
	if !bytes.HasPrefix(suffix, []byte(hashMember)) || !bytes.HasSuffix(suffix, []byte(`"}`)) {
		return nil, "", false
	}
	sum = string(suffix[len(hashMember) : len(hashMember)+64])
	if _, err := hex.DecodeString(sum); err != nil {
		return nil, "", false
	}
	return line[:cut], sum, true
}

// lineHash returns, in hex, the hash of body (a line up to its hash member,
// as splitHash returns it) closed with the `}` splitHash leaves off: the
// bytes encode hashed. h is reset first, so one h serves many lines: a
// SHA-256 for plain records, an HMAC-SHA256 under the record's epoch key for
// sealed ones (hasher makes either). The caller compares the result with
// the hash the line claims.
func lineHash(h hash.Hash, body []byte) string {
	h.Reset()
	h.Write(body)
	h.Write([]byte{'}'})
	return hex.EncodeToString(h.Sum(nil))
}

var errNoHash = errors.New(`line does not end with a "hash" member`)

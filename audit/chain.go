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
	rec.Hash = ""
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	h := hasher(key)
	h.Write(body)
	rec.Hash = hex.EncodeToString(h.Sum(nil))
	line := make([]byte, 0, len(body)+hashSuffixLen)
	line = append(line, body[:len(body)-1]...)
	line = append(line, hashMember...)
	line = append(line, rec.Hash...)
	return append(line, '"', '}'), nil
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

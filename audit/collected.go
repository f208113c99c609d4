package audit

import "bytes"

// A syslog collector's file (docs/offhost.md: rsyslog's received.log) holds
// one RFC 5424 message a line, as the sink sends it:
//
//	<PRI>1 TIMESTAMP HOSTNAME hostpass PROCID MSGID [hostpass@32473 seq="N" ...] MSG
//
// MSG is the record's line, unchanged. show and sessions read such a file
// as they read a log: each line's record is its MSG.

// collectorSD opens hostpass's STRUCTURED-DATA element (sink.SDID; audit
// does not import the sink, which dials).
var collectorSD = []byte("[hostpass@32473 ")

// CollectedRecord returns the record a collector's line holds (its MSG),
// and the HOSTNAME its header names. ok is false for a line that is not a
// hostpass message: another program's, or one whose header is cut. The
// record is not checked: a body the collector cut is not JSON, and the
// reader that decodes it skips it as it skips any line that is not.
func CollectedRecord(line []byte) (record []byte, hostname string, ok bool) {
	if len(line) == 0 || line[0] != '<' {
		return nil, "", false
	}
	// Six header fields, each ending in a space: <PRI>1, TIMESTAMP,
	// HOSTNAME, APP-NAME, PROCID, MSGID.
	rest := line
	var fields [6][]byte
	for i := range fields {
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			return nil, "", false
		}
		fields[i], rest = rest[:j], rest[j+1:]
	}
	if string(fields[3]) != "hostpass" || !bytes.HasPrefix(rest, collectorSD) {
		return nil, "", false
	}
	// The element ends at the first ']' not escaped by '\'.
	for i := len(collectorSD); i < len(rest); i++ {
		switch rest[i] {
		case '\\':
			i++
		case ']':
			if i+1 < len(rest) && rest[i+1] == ' ' {
				return rest[i+2:], string(fields[2]), true
			}
			return nil, "", false
		}
	}
	return nil, "", false
}

// recordLine is the record a line of a log or of a collector's file
// holds: the line itself, or a collector's MSG, its HOSTNAME and the
// prev and hash its structured data gives; nil for a collector's line
// that is not hostpass's.
func recordLine(line []byte) (record []byte, sent sentBy) {
	if len(line) == 0 || line[0] != '<' {
		return line, sentBy{}
	}
	rec, hostname, ok := CollectedRecord(line)
	if !ok {
		return nil, sentBy{}
	}
	sd := line[:len(line)-len(rec)]
	return rec, sentBy{host: hostname, prev: sdParam(sd, "prev"), hash: sdParam(sd, "hash")}
}

// sentBy is what a collector's line says of its record besides the record:
// who sent it, and its chain as the sender's structured data gives it.
type sentBy struct{ host, prev, hash string }

// sdParam is the value of a parameter of hostpass's structured data
// (hashes: hex, never escaped), or "".
func sdParam(sd []byte, name string) string {
	key := []byte(" " + name + `="`)
	i := bytes.Index(sd, key)
	if i < 0 {
		return ""
	}
	v := sd[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return ""
	}
	return string(v[:j])
}

package sink

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Facility authpriv (10): audit records are security events, which local
// syslog daemons keep apart from the general log.
const (
	facilityAuthpriv = 10
	severityWarning  = 4
	severityInfo     = 6
)

const (
	appName      = "hostpass"
	maxMsgID     = 32  // RFC 5424 MSGID
	maxHostname  = 255 // RFC 5424 HOSTNAME
	timestampFmt = "2006-01-02T15:04:05.000000Z07:00"
)

// SDID names hostpass's STRUCTURED-DATA element (RFC 5424 §6.3.2: a name
// without '@' is reserved for IANA-registered SD-IDs; anyone else writes
// name@<Private Enterprise Number>). hostpass has no PEN of its own yet:
// 32473 is the number RFC 5612 reserves for documentation and examples, a
// documented placeholder until one is registered. It is the one place the
// number is written.
const SDID = "hostpass@32473"

// Chain is a record's place in the audit log's hash chain, as the record
// holds it. It travels in STRUCTURED-DATA, ahead of MSG, so that a collector
// that cuts a long message (RFC 5424 §6.1: only at its end) keeps it.
type Chain struct {
	Seq   uint64
	Epoch *uint64 // sealed and signed logs only
	Prev  string
	Hash  string
}

// accepted is what an error about addr tells the user to write instead.
const accepted = "want unixgram:///dev/log, unix:///PATH, udp://HOST:PORT or tcp://HOST:PORT"

// ParseAddr turns addr into the network and address for net.Dial, and says
// whether the transport is a stream (which needs octet-counted framing). It is
// exported so that the daemon's settings check refuses a bad address before
// anything starts; its error names what is accepted.
func ParseAddr(addr string) (network, address string, stream bool, err error) {
	bad := fmt.Errorf("syslog address %q: %s", addr, accepted)
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		return "", "", false, bad
	}
	switch scheme {
	case "unixgram", "unix":
		// An absolute path only: a relative one would depend on the daemon's
		// working directory.
		if !strings.HasPrefix(rest, "/") || len(rest) < 2 {
			return "", "", false, bad
		}
		return scheme, rest, scheme == "unix", nil
	case "udp", "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" {
			return "", "", false, bad
		}
		// A numeric port only, so that a typo is refused here rather than
		// failing every dial in the background.
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", "", false, bad
		}
		return scheme, rest, scheme == "tcp", nil
	}
	return "", "", false, bad
}

// format builds one RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [hostpass@32473 seq="N" epoch="E" prev="…" hash="…"] MSG
//
// framed with octet counting (RFC 6587: "LEN SP MSG") when stream is true.
// The result never shares memory with line.
func format(t time.Time, hostname string, pid int, event string, refused bool, chain Chain, line []byte, stream bool) []byte {
	sev := severityInfo
	if refused {
		sev = severityWarning
	}
	var b []byte
	b = fmt.Appendf(b, "<%d>1 ", facilityAuthpriv*8+sev)
	b = t.UTC().AppendFormat(b, timestampFmt)
	b = append(b, ' ')
	b = append(b, header(hostname, maxHostname)...)
	b = append(b, " "+appName+" "...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, ' ')
	b = append(b, header(event, maxMsgID)...)
	b = append(b, ' ')
	b = appendSD(b, chain)
	b = append(b, ' ')
	b = append(b, line...)
	if !stream {
		return b
	}
	framed := strconv.AppendInt(nil, int64(len(b)), 10)
	framed = append(framed, ' ')
	return append(framed, b...)
}

// appendSD appends chain as one SD-ELEMENT; epoch only when the record has
// one, as the record's own fields are absent when they do not apply.
func appendSD(b []byte, c Chain) []byte {
	b = append(b, "["+SDID+` seq="`...)
	b = strconv.AppendUint(b, c.Seq, 10)
	if c.Epoch != nil {
		b = append(b, `" epoch="`...)
		b = strconv.AppendUint(b, *c.Epoch, 10)
	}
	b = append(b, `" prev="`...)
	b = appendParamValue(b, c.Prev)
	b = append(b, `" hash="`...)
	b = appendParamValue(b, c.Hash)
	return append(b, `"]`...)
}

// appendParamValue escapes '"', '\' and ']' (RFC 5424 §6.3.3). A hash is
// hex and never holds them; escaping anyway keeps a malformed value from
// ending the element early.
func appendParamValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' || c == ']' {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return b
}

// header makes s a valid RFC 5424 header field: printable ASCII without
// spaces (anything else would shift the fields a collector parses), one '_'
// per character replaced, at most max bytes, and "-" (the nil value) when empty.
func header(s string, max int) string {
	if s == "" {
		return "-"
	}
	b := make([]byte, 0, min(len(s), max))
	for _, r := range s {
		if len(b) == max {
			break
		}
		if r < 33 || r > 126 {
			r = '_'
		}
		b = append(b, byte(r))
	}
	return string(b)
}

package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Host views: a record names the view it saw, and that view must be the
// last host.view record before it in its file (view.go writes them so).

// checkView checks that a record names the host view it saw as the last
// host.view record before it in its file, and that a host.view written as a
// change names that view as its base: the log writes them so, and a record
// naming any other view claims an exposure no record in the file shows.
func (v *verifier) checkView(f chainFields, line []byte) error {
	var r struct {
		Event    Event  `json:"event"`
		HostView string `json:"host_view"`
		BaseView string `json:"base_view"`
	}
	ref, fast := fastViewRef(line)
	switch {
	case fast && f.Event != HostView:
		r.Event, r.HostView = f.Event, ref
	default:
		if err := json.Unmarshal(line, &r); err != nil {
			return v.problem(f.Seq, NotJSON, notRecord(err))
		}
	}
	if r.Event == HostView {
		switch {
		case r.HostView == "":
			return v.problem(f.Seq, UnknownView, "a host.view record without a host_view member: every host.view record names the view it records")
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

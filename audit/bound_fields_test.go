package audit

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Every string member of Record that a caller can fill is cut by the first
// stage, under its own name, not left for the last stage to drop with the
// record's other fields: the cutter's field list is written by hand, and a
// member added to Record without a line there would be cut only by
// dropping everything (address_ipv6 once was). The members the cutter
// leaves alone are hostpass's own fixed-size values, named here.
func TestEveryStringMemberIsCutByTheFirstStage(t *testing.T) {
	own := []string{
		"event", "outcome", // hostpass's names of what happened
		"prev", "hash", "host_view", "base_view", // 64 hex
		"sandbox", // one of audit.SandboxStates
	}
	var paths []string
	stringPaths(reflect.TypeFor[Record](), "", &paths)
	for _, p := range paths {
		if slices.Contains(own, p) {
			continue
		}
		// A short member beside it, which only the last stage drops:
		// seeing it kept shows that the first stage did the cut.
		witness := "detail"
		if p == witness {
			witness = "tag"
		}
		var rec Record
		setString(reflect.ValueOf(&rec).Elem(), strings.Split(p, "."), strings.Repeat("x", 2*MaxRecord))
		setString(reflect.ValueOf(&rec).Elem(), []string{witness}, "kept")
		rec.Event, rec.Outcome = EndpointJoin, OK
		if _, err := encodeRecord(&rec, nil); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if !slices.Equal(rec.Truncated, []string{p}) {
			t.Errorf("a %d-byte %s: truncated %q, want it alone, cut by the first stage (add it to cutter.apply)", 2*MaxRecord, p, rec.Truncated)
		}
	}
}

// stringPaths lists the JSON paths of t's string members, nested structs'
// included (lists and maps are cut by entries, elsewhere).
func stringPaths(t reflect.Type, prefix string, out *[]string) {
	for f := range t.Fields() {
		n := jsonName(f)
		if n == "" {
			continue
		}
		switch ft := deref(f.Type); {
		case ft.Kind() == reflect.String:
			*out = append(*out, prefix+n)
		case ft.Kind() == reflect.Struct && ft.PkgPath() != "time":
			stringPaths(ft, prefix+n+".", out)
		}
	}
}

// setString sets the member at path (JSON names) of struct v to s, making
// the structs on the way.
func setString(v reflect.Value, path []string, s string) {
	for f := range v.Type().Fields() {
		if jsonName(f) != path[0] {
			continue
		}
		fv := v.FieldByIndex(f.Index)
		if fv.Kind() == reflect.Pointer {
			fv.Set(reflect.New(fv.Type().Elem()))
			fv = fv.Elem()
		}
		if len(path) == 1 {
			fv.SetString(s)
		} else {
			setString(fv, path[1:], s)
		}
		return
	}
	panic("no member " + path[0])
}

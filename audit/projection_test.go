package audit

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Readers decode only the part of a record they need (Entry for show,
// chainFields and fastFields for verify): each member they read must be a
// member of Record, of the same JSON type, so that Record stays the one
// declaration of the schema.
func TestProjectionsReadRecordMembers(t *testing.T) {
	for _, p := range []reflect.Type{reflect.TypeFor[Entry](), reflect.TypeFor[chainFields]()} {
		sameMembers(t, p.Name(), p, reflect.TypeFor[Record]())
	}
	var keys []string
	for _, k := range chainKeys {
		keys = append(keys, string(k))
	}
	if want := jsonNames(reflect.TypeFor[chainFields]()); !slices.Equal(keys, want) {
		t.Errorf("fastparse.go's chainKeys %v, chainFields' members %v", keys, want)
	}
	// fastFields reads time, seq and event from a line's start, and epoch,
	// next_epoch, prev and hash from its end: Record must write them there.
	names := jsonNames(reflect.TypeFor[Record]())
	if head := names[:3]; !slices.Equal(head, []string{"time", "seq", "event"}) {
		t.Errorf("Record's first members are %v; fastparse.go reads time, seq, event there", head)
	}
	if tail := names[len(names)-4:]; !slices.Equal(tail, []string{"epoch", "next_epoch", "prev", "hash"}) {
		t.Errorf("Record's last members are %v; fastparse.go reads epoch, next_epoch, prev, hash there", tail)
	}
	if hashMember != `,"hash":"` {
		t.Errorf("hashMember %q does not name Record's hash", hashMember)
	}
}

// sameMembers fails t for each JSON member of p that rec has not, or has
// with another JSON type; nested structs are compared member by member.
func sameMembers(t *testing.T, name string, p, rec reflect.Type) {
	t.Helper()
	fields := map[string]reflect.StructField{}
	for f := range rec.Fields() {
		fields[jsonName(f)] = f
	}
	for f := range p.Fields() {
		n := jsonName(f)
		if n == "" {
			continue
		}
		r, ok := fields[n]
		if !ok {
			t.Errorf("%s reads %q, which Record does not have", name, n)
			continue
		}
		pt, rt := deref(f.Type), deref(r.Type)
		if pt.Kind() == reflect.Struct && rt.Kind() == reflect.Struct && pt != rt && pt.PkgPath() != "time" {
			sameMembers(t, name+"."+n, pt, rt)
			continue
		}
		if pt != rt {
			t.Errorf("%s reads %q as %s; Record has %s", name, n, pt, rt)
		}
	}
}

func deref(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

func jsonName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if n == "-" || !f.IsExported() {
		return ""
	}
	return n
}

func jsonNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if n := jsonName(f); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// The bound names what it cut by member path ("container.labels"): every
// path it names is a member of Record.
func TestTruncatedNamesRecordMembers(t *testing.T) {
	members := map[string]bool{}
	memberPaths(reflect.TypeFor[Record](), "", members)
	// Strings of 2,000 bytes, one entry per list and map: only strings
	// are cut, each named. Many huge ones: fields are dropped and named.
	for _, c := range []struct{ size, n int }{{2000, 1}, {64 << 10, 8}} {
		var rec Record
		fill(reflect.ValueOf(&rec), c.size, c.n, func() string { return strings.Repeat("x", c.size) })
		rec.Event, rec.Outcome, rec.Prev, rec.Hash, rec.Truncated = EndpointJoin, OK, strings.Repeat("0", 64), "", nil
		if _, err := encodeRecord(&rec, nil); err != nil {
			t.Fatal(err)
		}
		if len(rec.Truncated) == 0 {
			t.Fatalf("strings of %d bytes: nothing cut", c.size)
		}
		for _, p := range rec.Truncated {
			if !members[p] {
				t.Errorf("truncated names %q, which is not a member of Record", p)
			}
		}
	}
}

func memberPaths(t reflect.Type, prefix string, out map[string]bool) {
	for f := range t.Fields() {
		n := jsonName(f)
		if n == "" {
			continue
		}
		out[prefix+n] = true
		ft := deref(f.Type)
		if ft.Kind() == reflect.Slice {
			ft = deref(ft.Elem())
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" {
			memberPaths(ft, prefix+n+".", out)
		}
	}
}

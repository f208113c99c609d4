package audit

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A container's name seen through --network container:X is as long as
// Docker allows (a 90,000-character name gave a 90,729-byte host.join):
// via is cut like every other name.
func TestViaIsCut(t *testing.T) {
	rec := Record{Time: time.Now().UTC(), Event: HostJoin, Outcome: OK, Container: &Container{ID: "c"},
		Via: &ContainerRef{ID: "x", Name: strings.Repeat("a", 200<<10)}}
	line, err := encodeRecord(&rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(line) > MaxRecord || !slices.Contains(rec.Truncated, "via.name") {
		t.Errorf("record is %d bytes (bound %d), truncated %v: want via.name cut", len(line), MaxRecord, rec.Truncated)
	}
}

// fill sets every string, map and slice reachable from v (a pointer) to a
// huge value: n entries of strings of size bytes.
func fill(v reflect.Value, size, n int, rs func() string) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), size, n, rs)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && v.Type().Field(i).Name != "View" {
				fill(v.Field(i), size, n, rs)
			}
		}
	case reflect.String:
		v.SetString(rs())
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fill(s.Index(i), size, n, rs)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range n {
			k := reflect.New(v.Type().Key()).Elem()
			fill(k, size, n, rs)
			e := reflect.New(v.Type().Elem()).Elem()
			if e.Kind() == reflect.Interface {
				e.Set(reflect.ValueOf(rs()))
			} else {
				fill(e, size, n, rs)
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Int, reflect.Int64:
		v.SetInt(1 << 40)
	case reflect.Uint64:
		v.SetUint(1 << 63)
	case reflect.Float64:
		v.SetFloat(1e300)
	case reflect.Bool:
		v.SetBool(true)
	}
}

// No record of any shape exceeds MaxRecord: every string, map and list
// field, nested ones included, huge at once, in few long entries or many
// short ones, of characters JSON escapes six-fold or of plain ones.
func TestNoRecordOfAnyShapeExceedsTheBound(t *testing.T) {
	for _, shape := range []struct {
		name    string
		size, n int
		char    string
	}{
		{"few long", 256 << 10, 2, "x"},
		{"many short", 40, 300, "y"},
		{"many medium escaped", 900, 40, "\x01"},
		{"one huge escaped", 256 << 10, 1, "\x02"},
	} {
		t.Run(shape.name, func(t *testing.T) {
			i := 0
			rs := func() string {
				i++
				return strings.Repeat(shape.char, shape.size) + string(rune('a'+i%26)) + strings.Repeat("z", i%97)
			}
			var rec Record
			fill(reflect.ValueOf(&rec), shape.size, shape.n, rs)
			rec.Event = EndpointJoin
			for _, key := range [][]byte{nil, make([]byte, 32)} {
				r := rec
				e := uint64(1<<63 + 5)
				r.Epoch, r.Seq, r.Prev = &e, 1<<63, Genesis
				line, err := encodeRecord(&r, key)
				if err != nil {
					t.Fatal(err)
				}
				if len(line) > MaxRecord {
					t.Fatalf("record is %d bytes, over MaxRecord %d", len(line), MaxRecord)
				}
				var back Record
				if err := json.Unmarshal(line, &back); err != nil {
					t.Fatal(err)
				}
				if back.Seq != r.Seq || back.Prev != Genesis || back.Epoch == nil || *back.Epoch != e || back.Event != EndpointJoin || len(back.Truncated) == 0 {
					t.Errorf("the chain or the truncation mark is lost: seq %d prev %s epoch %v event %s truncated %v", back.Seq, back.Prev, back.Epoch, back.Event, back.Truncated)
				}
			}
		})
	}
}

// A record kept in memory while the log is down is cut to the bound first:
// 500 refused creates with a 900 KiB tag used to keep 441 MiB. Past the
// byte limit, kept records are counted in audit.lost like those past the
// count limit.
func TestKeptRecordsAreBoundedInBytes(t *testing.T) {
	disk := injectFaults(t)
	path := t.TempDir() + "/audit.jsonl"
	tag := strings.Repeat("t", 900<<10)
	refused := Record{Time: time.Now().UTC(), Event: NetworkCreate, Outcome: Refused, Options: map[string]any{"tag": tag}}
	_, size := boundKept(refused)
	if size > MaxRecord {
		t.Fatalf("a kept record is %d bytes, over MaxRecord", size)
	}
	l, err := OpenWith(path, Options{MaxKeptBytes: 10 * size})
	if err != nil {
		t.Fatal(err)
	}
	disk.set(os.ErrInvalid, nil, nil) // the disk refuses every write
	var lastErr error
	for range 20 {
		lastErr = l.AppendOrKeep(refused)
	}
	if l.Pending() != 10 {
		t.Errorf("%d records kept, want the 10 that fit in the byte limit once cut", l.Pending())
	}
	if want := "would pass the limit of " + strconv.Itoa(10*size) + ", so this one is counted in an audit.lost record"; lastErr == nil || !strings.Contains(lastErr.Error(), want) {
		t.Errorf("the 20th record: %v\nwant it counted as lost: %q", lastErr, want)
	}
	disk.set(nil, nil, nil)
	if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs := readRecords(t, path)
	for _, r := range recs {
		if r.Event == NetworkCreate && !slices.Contains(r.Truncated, "options") {
			t.Errorf("seq %d: a kept create with a 900 KiB tag, truncated %v, want options cut", r.Seq, r.Truncated)
		}
	}
	wantSeqs(t, recs, append(slices.Repeat([]Event{NetworkCreate}, 10), Lost, EndpointJoin)...)
	if lost := recs[10]; lost.Lost == nil || lost.Lost.Records != 10 {
		t.Errorf("audit.lost says %+v, want the 10 records not kept", lost.Lost)
	}
}

func countEvent(recs []Record, event Event) int {
	n := 0
	for _, r := range recs {
		if r.Event == event {
			n++
		}
	}
	return n
}

package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRecordsStayUnderTheBound(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	many := map[string]string{}
	for i := range 2000 {
		many[strings.Repeat("k", 8)+string(rune('a'+i%26))+strings.Repeat("v", i%7)+time.Duration(i).String()] = strings.Repeat("v", 100)
	}
	shared := map[string]any{"com.docker.network.generic": map[string]any{"tag": huge}}
	for _, tc := range []struct {
		name      string
		rec       Record
		truncated []string
	}{
		{"a 1 MB label", Record{Event: HostJoin, Container: &Container{ID: "c1", Labels: map[string]string{"big": huge, "team": "ops"}}},
			[]string{"container.labels"}},
		{"many labels", Record{Event: EndpointAttribute, Container: &Container{ID: "c1", Labels: many}},
			[]string{"container.labels"}},
		{"a refused 1 MB tag in options", Record{Event: NetworkCreate, Outcome: Refused, Error: "network option \"tag\" is 1048576 bytes; the limit is 256 bytes", Options: shared},
			[]string{"options"}},
		{"every text long", Record{Event: EndpointJoin, Error: huge, Detail: huge, EndpointID: huge, SandboxKey: huge, NetworkID: huge, Tag: huge,
			Container: &Container{ID: huge, Name: huge, Image: huge, ImageID: huge, CapAdd: []string{huge}, Ports: []string{huge}}, NetworkLabels: map[string]string{huge: huge}},
			[]string{"error", "detail", "network_id", "endpoint_id", "sandbox_key", "tag", "network_labels", "container.id", "container.name", "container.image", "container.image_id", "container.cap_add", "container.published_ports"}},
		{"control characters JSON escapes six-fold", Record{Event: EndpointJoin, Error: strings.Repeat("\x01", 1<<20), Options: map[string]any{"a": []any{strings.Repeat("\x01", 1<<19), strings.Repeat("\x02", 1<<19)}}},
			[]string{"error", "options"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l := Open(path, nil)
			if err := l.Append(tc.rec); err != nil {
				t.Fatal(err)
			}
			l.Close()
			b, _ := os.ReadFile(path)
			if len(b) > MaxRecord+1 {
				t.Errorf("record is %d bytes, want at most %d", len(b)-1, MaxRecord)
			}
			r := readRecords(t, path)[0]
			for _, f := range tc.truncated {
				if !slices.Contains(r.Truncated, f) {
					t.Errorf("truncated = %v, want it to name %s", r.Truncated, f)
				}
			}
			if tc.name != "many labels" && !strings.Contains(string(b), Cut) { // entries left out carry no mark but truncated
				t.Errorf("no %q mark on the cut record", Cut)
			}
			if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
				t.Errorf("verify: %v", err)
			}
		})
	}
	if g := shared["com.docker.network.generic"].(map[string]any)["tag"]; g != huge {
		t.Error("cutting a record changed the caller's map")
	}
}

func TestSmallRecordIsNotCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	label := strings.Repeat("y", 30<<10) // long, but the record fits
	l.Append(Record{Event: HostJoin, Container: &Container{ID: "c", Labels: map[string]string{"l": label}}})
	l.Close()
	r := readRecords(t, path)[0]
	if r.Truncated != nil || r.Container.Labels["l"] != label {
		t.Errorf("a record under the bound was cut: truncated %v", r.Truncated)
	}
}

func TestCutKeepsUTF8Whole(t *testing.T) {
	s, cut := cutString(strings.Repeat("é", 600), 1023)
	if !cut || !strings.HasSuffix(s, Cut) || len(s) != 1022+len(Cut) || !strings.HasPrefix(s, "é") {
		t.Errorf("cut %d bytes, %q…, want 1022 bytes of whole runes and the mark", len(s), s[:4])
	}
}

// A kept record holds no host view: the view is not encoded in the record,
// so MaxKeptBytes could not count it, and a refused join exposed nothing.
// 2,000 refused joins that saw 500 links each stay within the byte cap.
func TestKeptRecordsHoldNoView(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "notadir")
	os.WriteFile(blocker, nil, 0o600)
	l := Open(filepath.Join(blocker, "audit.jsonl"), nil) // unwritable
	defer l.Close()
	view := make([]Interface, 500)
	for i := range view {
		view[i] = Interface{Name: fmt.Sprintf("veth%08x", i), Index: i, MTU: 1500, Up: true, Addrs: []string{"fe80::42:acff:fe11:2/64"}}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 2000; i++ {
		v := append([]Interface(nil), view...) // each call's own snapshot, as the driver's
		l.AppendOrKeep(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: Refused, NetworkID: "n", EndpointID: fmt.Sprint(i), View: v})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if l.Pending() != 2000 {
		t.Fatalf("%d kept, want 2000", l.Pending())
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 2*16<<20 {
		t.Errorf("the heap grew %d MiB keeping 2,000 refused joins, more than twice the 16 MiB cap: their views are kept", grew>>20)
	}
}

package audit

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

func TestQueryFiltersAndReadsGzippedRotatedFiles(t *testing.T) {
	_, files := writeLog(t, 60, 2000, "")
	// The operator compresses the oldest rotated file.
	b, _ := os.ReadFile(files[0])
	gz, _ := os.Create(files[0] + ".gz")
	w := gzip.NewWriter(gz)
	w.Write(b)
	w.Close()
	gz.Close()
	os.Remove(files[0])
	files, _ = Files(files[len(files)-1])
	if len(files) < 3 || files[0][len(files[0])-3:] != ".gz" {
		t.Fatalf("files %v, want the .gz one first", files)
	}
	if sum, err := Verify(files, VerifyOptions{}); err != nil || sum.Records != 60 {
		t.Fatalf("verify with a gzipped file: %+v %v", sum, err)
	}

	for _, tc := range []struct {
		f    Filter
		want []uint64
	}{
		{Filter{Endpoint: "ep7"}, []uint64{8}},
		{Filter{Endpoint: "ep5"}, []uint64{6, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60}}, // a prefix: ep5, ep50..ep59
		{Filter{Event: "endpoint.", Network: "net"}, nil},                              // all 60
		{Filter{Event: "network."}, []uint64{}},
		{Filter{Network: "other"}, []uint64{}},
		{Filter{Until: time.Now().Add(-time.Hour)}, []uint64{}},
	} {
		var got []uint64
		err := Query(files, tc.f, func(e *Entry, _ []byte) error { got = append(got, e.Seq); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == nil {
			if len(got) != 60 {
				t.Errorf("%+v: %d records, want all 60", tc.f, len(got))
			}
			continue
		}
		if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
			t.Errorf("%+v: seqs %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestFollowSeesNewRecordsAcrossRotation(t *testing.T) {
	path, _ := writeLog(t, 3, 0, "")
	l, _ := OpenWith(path, Options{})
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []string
	seen := func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if g == id {
				return true
			}
		}
		return false
	}
	go Follow(ctx, path, Filter{Event: "endpoint.leave"}, func(e *Entry, _ []byte) error {
		mu.Lock()
		got = append(got, e.EndpointID)
		mu.Unlock()
		return nil
	})
	// Follow starts at the log's end: append until it shows it is reading.
	deadline := time.Now().Add(5 * time.Second)
	for !seen("probe") && time.Now().Before(deadline) {
		l.Append(Record{Event: EndpointJoin, Outcome: OK, EndpointID: "filtered-out"})
		l.Append(Record{Event: EndpointLeave, Outcome: OK, EndpointID: "probe"})
		time.Sleep(50 * time.Millisecond)
	}
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	l.Append(Record{Event: EndpointLeave, Outcome: OK, EndpointID: "after-rotation"})
	for !seen("after-rotation") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !seen("probe") || !seen("after-rotation") || seen("filtered-out") || seen("ep0") {
		mu.Lock()
		defer mu.Unlock()
		t.Errorf("followed %v, want the probes and after-rotation only: not the old records, not the filtered-out joins", got)
	}
}

func TestQueryByContainerAndNetworkName(t *testing.T) {
	path := t.TempDir() + "/audit.jsonl"
	l := Open(path, nil)
	web := &Container{ID: "c0ffee0000", Name: "web"}
	for _, r := range []Record{
		{Event: NetworkCreate, NetworkID: "net1"},
		{Event: EndpointJoin, NetworkID: "net1", EndpointID: "epA"},
		{Event: EndpointJoin, NetworkID: "net1", EndpointID: "epB"},
		{Event: EndpointAttribute, NetworkID: "net1", NetworkName: "payments", EndpointID: "epA", Container: web},
		{Event: EndpointAttribute, NetworkID: "net1", NetworkName: "payments", EndpointID: "epB", Container: &Container{ID: "other", Name: "db"}},
		{Event: HostJoin, Container: web},
		{Event: EndpointLeave, NetworkID: "net1", EndpointID: "epA"},
	} {
		r.Outcome = OK
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	seqs := func(f Filter) []uint64 {
		var got []uint64
		if err := Query([]string{path}, f, func(e *Entry, _ []byte) error { got = append(got, e.Seq); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Container: "web"}, "[2 4 6 7]"},
		{Filter{Container: "c0ffee"}, "[2 4 6 7]"},
		{Filter{Container: "web", Event: "endpoint.join"}, "[2]"},
		{Filter{Network: "payments"}, "[1 2 3 4 5 7]"},
		{Filter{Network: "net1"}, "[1 2 3 4 5 7]"},
		{Filter{Container: "nobody"}, "[]"},
	} {
		if got := fmt.Sprint(seqs(tc.f)); got != tc.want {
			t.Errorf("%+v: seqs %s, want %s", tc.f, got, tc.want)
		}
	}
}

// --service: a service's tasks' watcher records, by the name or ID (or ID
// prefix) their swarm identity states, and every record of the endpoints
// attributed to them; not another service's, nor a plain container's.
func TestQueryByService(t *testing.T) {
	path := t.TempDir() + "/audit.jsonl"
	l := Open(path, nil)
	web := &SwarmTask{ServiceName: "web", ServiceID: "x7rbl4pkq8pxcv2d3hqm1fxn0", TaskID: "t1", Slot: 1, NodeID: "n1"}
	agent := &SwarmTask{ServiceName: "agent", ServiceID: "a9zz", TaskID: "t2", NodeID: "n1"}
	for _, r := range []Record{
		{Event: EndpointJoin, NetworkID: "net1", EndpointID: "epA"},                                                    // 1
		{Event: EndpointJoin, NetworkID: "net1", EndpointID: "epB"},                                                    // 2
		{Event: EndpointAttribute, NetworkID: "net1", EndpointID: "epA", Container: &Container{ID: "c1"}, Swarm: web},  // 3
		{Event: EndpointAttribute, NetworkID: "net1", EndpointID: "epB", Container: &Container{ID: "c2", Name: "web"}}, // 4: a plain container named web
		{Event: HostJoin, Container: &Container{ID: "c3"}, Swarm: agent},                                               // 5
		{Event: PolicyViolation, NetworkID: "net1", EndpointID: "epA", Container: &Container{ID: "c1"}, Swarm: web},    // 6
		{Event: EndpointLeave, NetworkID: "net1", EndpointID: "epA"},                                                   // 7
		{Event: HostLeave, Container: &Container{ID: "c3"}, Swarm: agent},                                              // 8
	} {
		r.Outcome = OK
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Service: "web"}, "[1 3 6 7]"},
		{Filter{Service: "x7rbl4pkq8pxcv2d3hqm1fxn0"}, "[1 3 6 7]"},
		{Filter{Service: "x7rbl"}, "[1 3 6 7]"},
		{Filter{Service: "web", Event: "endpoint."}, "[1 3 7]"},
		{Filter{Service: "agent"}, "[5 8]"},
		{Filter{Service: "agent", Container: "c1"}, "[]"},
		{Filter{Service: "nobody"}, "[]"},
	} {
		var got []uint64
		if err := Query([]string{path}, tc.f, func(e *Entry, _ []byte) error { got = append(got, e.Seq); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("%+v: seqs %v, want %s", tc.f, got, tc.want)
		}
	}
}

// Filter.Host matches the host a record names, exactly: no prefix.
func TestFilterMatchHost(t *testing.T) {
	for _, tc := range []struct {
		host, filter string
		want         bool
	}{
		{"node-1", "node-1", true},
		{"node-1", "node-2", false},
		{"node-10", "node-1", false},
		{"node-1", "", true},
	} {
		if got := (Filter{Host: tc.filter}).Match(&Entry{Host: tc.host}); got != tc.want {
			t.Errorf("host %q, --host %q: Match = %v, want %v", tc.host, tc.filter, got, tc.want)
		}
	}
}

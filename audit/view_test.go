package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func links(n int) []Interface {
	out := []Interface{{Name: "lo", Index: 1, MTU: 65536, Up: true, Addrs: []string{"127.0.0.1/8"}}}
	for i := 2; i <= n; i++ {
		out = append(out, Interface{Name: fmt.Sprintf("veth%d", i), Index: i, MAC: "02:42:ac:11:00:02", MTU: 1500, Up: true})
	}
	return out
}

func events(recs []Record) []Event {
	var out []Event
	for _, r := range recs {
		out = append(out, r.Event)
	}
	return out
}

func TestHostViewIsWrittenOnceBeforeTheJoinsThatNameIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	a, b := links(2), links(3)
	for _, v := range [][]Interface{a, a, b, a} {
		if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, View: v}); err != nil {
			t.Fatal(err)
		}
	}
	l.Append(Record{Event: EndpointLeave, Outcome: OK})
	l.Close()
	// A restart writes the view again before the first join that names it.
	l = Open(path, nil)
	l.Append(Record{Event: HostJoin, Outcome: OK, View: links(2)})
	l.Close()

	recs := readRecords(t, path)
	wantSeqs(t, recs, HostView, EndpointJoin, EndpointJoin, HostView, EndpointJoin, HostView, EndpointJoin, EndpointLeave, HostView, HostJoin)
	if recs[0].HostView == "" || recs[1].HostView != recs[0].HostView || recs[2].HostView != recs[0].HostView ||
		recs[4].HostView != recs[3].HostView || recs[3].HostView == recs[0].HostView || recs[6].HostView != recs[0].HostView ||
		recs[7].HostView != "" || recs[9].HostView != recs[8].HostView || recs[8].HostView != recs[0].HostView {
		t.Errorf("host_view references do not name the view before them: %v", recs)
	}
	if len(recs[0].HostInterfaces) != 2 || recs[1].HostInterfaces != nil {
		t.Errorf("the view record holds %v, the join %v; want the links on the view only", recs[0].HostInterfaces, recs[1].HostInterfaces)
	}
	// Later views in a file are the change from the one before.
	if v := recs[3]; v.BaseView != recs[0].HostView || v.HostInterfaces != nil || len(v.ChangedInterfaces) != 1 || v.ChangedInterfaces[0].Name != "veth3" || v.RemovedInterfaces != nil {
		t.Errorf("second view %+v, want veth3 added to the first", v)
	}
	if v := recs[5]; v.BaseView != recs[3].HostView || v.ChangedInterfaces != nil || fmt.Sprint(v.RemovedInterfaces) != "[3]" {
		t.Errorf("third view %+v, want index 3 removed from the second", v)
	}
	if v := recs[8]; v.BaseView != "" || len(v.HostInterfaces) != 2 {
		t.Errorf("first view after a restart %+v, want it in full", v)
	}
	if r := recs[0]; r.Driver != "" || r.NetworkID != "" || r.Internal != nil || r.Adopted != nil {
		t.Errorf("host.view %+v carries network fields", r)
	}
}

func TestHostViewIsWrittenAgainAfterRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	l.Append(Record{Event: EndpointJoin, Outcome: OK, View: links(2)})
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	l.Append(Record{Event: EndpointJoin, Outcome: OK, View: links(2)})
	l.Close()
	recs := readRecords(t, path)
	if got := events(recs); len(got) != 2 || got[0] != HostView || got[1] != EndpointJoin {
		t.Errorf("the new file holds %v, want its own host.view before the join", got)
	}
}

func TestHostViewIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	host := links(2000)
	l.Append(Record{Event: EndpointJoin, Outcome: OK, View: host})
	l.Close()
	recs := readRecords(t, path)
	v := recs[0]
	if v.Event != HostView || v.OmittedInterfaces == 0 || len(v.HostInterfaces)+v.OmittedInterfaces != 2000 || v.HostInterfaces[0].Name != "lo" {
		t.Errorf("view of 2000 links: %d kept, %d omitted; want some omitted, all counted, lo first", len(v.HostInterfaces), v.OmittedInterfaces)
	}
	if v.HostView != viewID(host) {
		t.Errorf("host_view %s, want the SHA-256 of every link, omitted ones too", v.HostView)
	}
}

func TestAFailedWriteWritesTheViewAgain(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "log")
	if err := os.WriteFile(blocker, nil, 0o640); err != nil { // the log's directory is a file
		t.Fatal(err)
	}
	path := filepath.Join(blocker, "audit.jsonl")
	l := Open(path, nil)
	if err := l.AppendOrKeep(Record{Event: EndpointJoin, Outcome: Refused, View: links(2)}); err == nil {
		t.Fatal("append under a file succeeded")
	}
	os.Remove(blocker)
	l.Append(Record{Event: EndpointJoin, Outcome: OK, View: links(2)})
	l.Close()
	recs := readRecords(t, path)
	// The refused join was kept without its view (a kept record holds none);
	// the view is written before the first join that names it.
	wantSeqs(t, recs, EndpointJoin, HostView, EndpointJoin)
	if recs[0].HostView != "" || recs[2].HostView != recs[1].HostView {
		t.Errorf("host_view: kept join %q, view %q, join %q", recs[0].HostView, recs[1].HostView, recs[2].HostView)
	}
}

func TestShowResolvesTheViewAJoinNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	l.Append(Record{Event: EndpointJoin, Outcome: OK, EndpointID: "ep1", View: links(2)})
	l.Append(Record{Event: EndpointLeave, Outcome: OK, EndpointID: "ep1"})
	l.Append(Record{Event: EndpointJoin, Outcome: OK, EndpointID: "ep2", View: links(3)})
	l.Close()
	for _, tc := range []struct {
		f    Filter
		want []int // interfaces each shown record carries; -1: no host_view
	}{
		{Filter{Event: "endpoint.join", Interfaces: true}, []int{2, 3}},
		{Filter{Endpoint: "ep2", Interfaces: true}, []int{3}},
		{Filter{Interfaces: true}, []int{2, 2, -1, 0, 3}}, // the host.view records too, as written: the second is a change
		{Filter{Event: "endpoint.join"}, []int{0, 0}},
	} {
		var got []int
		err := Query([]string{path}, tc.f, func(e *Entry, line []byte) error {
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("shown line %s: %v", line, err)
			}
			n := len(r.HostInterfaces)
			if r.HostView == "" {
				n = -1
			}
			got = append(got, n)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%+v: interfaces per record %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestHostRecordsCarryNoNetworkFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	for _, ev := range []Event{HostJoin, HostLeave, EndpointAttribute} {
		l.Append(Record{Event: ev, Outcome: OK, Driver: "hp", NetworkID: "n", Tag: "t", Internal: Flag(false), Adopted: Flag(false), Container: &Container{ID: "c"}})
	}
	l.Close()
	b, _ := os.ReadFile(path)
	recs := readRecords(t, path)
	for _, r := range recs[:2] {
		if r.Driver != "" || r.NetworkID != "" || r.Tag != "" || r.Internal != nil || r.Adopted != nil {
			t.Errorf("%s carries network fields:\n%s", r.Event, b)
		}
	}
	if r := recs[2]; r.Driver != "hp" || r.NetworkID != "n" || r.Internal == nil {
		t.Errorf("endpoint.attribute lost its network fields:\n%s", b)
	}
}

func TestShowRebuildsViewsFromTheirChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	host := links(5)
	steps := [][]Interface{host}
	next := slices.Clone(host)
	next = slices.Delete(next, 2, 3) // veth3 gone
	steps = append(steps, next)
	next = slices.Clone(next)
	next[0].Addrs = []string{"127.0.0.1/8", "::1/128"} // an address added to lo
	next = append(next, Interface{Name: "veth9", Index: 9, MTU: 1500})
	steps = append(steps, next)
	for i, v := range steps {
		l.Append(Record{Event: EndpointJoin, Outcome: OK, EndpointID: fmt.Sprint("ep", i), View: v})
	}
	l.Close()
	var got [][]Interface
	err := Query([]string{path}, Filter{Event: string(EndpointJoin), Interfaces: true}, func(_ *Entry, line []byte) error {
		var r Record
		json.Unmarshal(line, &r)
		got = append(got, r.HostInterfaces)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(steps)
	if fmt.Sprint(got) != want {
		t.Errorf("show rebuilt\n%v\nwant\n%v", got, want)
	}
}

func TestAViewThatOmitsLinksIsNeverABase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	big := links(2000)
	l.Append(Record{Event: EndpointJoin, Outcome: OK, View: big})
	l.Append(Record{Event: EndpointJoin, Outcome: OK, View: big[:1999]})
	l.Close()
	recs := readRecords(t, path)
	if recs[2].Event != HostView || recs[2].BaseView != "" || recs[2].OmittedInterfaces == 0 {
		t.Errorf("the view after one that omitted links: %s with base %q, want it in full", recs[2].Event, recs[2].BaseView)
	}
}

// A view whose host.view record failed to write is not written: once later
// records move seq past where it would have been, a join that saw it still
// writes it, so every view a record names is in the file before it.
func TestFailedWriteDoesNotCountItsViewAsWritten(t *testing.T) {
	disk := injectFaults(t)
	path := t.TempDir() + "/audit.jsonl"
	l := Open(path, nil)
	defer l.Close()
	if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, View: links(2)}); err != nil {
		t.Fatal(err)
	}
	disk.set(os.ErrInvalid, nil, nil) // the write fails, the cut back succeeds
	if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, View: links(3)}); err == nil {
		t.Fatal("the write failed, but Append reported no error")
	}
	disk.set(nil, nil, nil)
	for i := 0; i < 3; i++ {
		if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointCreate, Outcome: OK}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, View: links(3)}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	recs := readRecords(t, path)
	want := viewID(links(3))
	if got := recs[len(recs)-1].HostView; got != want {
		t.Fatalf("the last join names view %s, want %s", got, want)
	}
	if prev := recs[len(recs)-2]; prev.Event != HostView || prev.HostView != want {
		t.Errorf("the record before the last join is %s naming %s, want the host.view of %s", prev.Event, prev.HostView, want)
	}
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Error(err)
	}
}

// A record naming a view that is not the last host.view before it in its
// file, and a change from a view that is not the one before it, fail
// verify even when rechained.
func TestVerifyRefusesAViewNoRecordHolds(t *testing.T) {
	path := t.TempDir() + "/audit.jsonl"
	l := Open(path, nil)
	for _, n := range []int{2, 3} {
		if err := l.Append(Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, View: links(n)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	if !strings.Contains(ls[2], `"base_view"`) {
		t.Fatalf("line 3 is not a change from the view before: %s", ls[2])
	}
	other := viewID(links(7))
	for _, c := range []struct {
		name, old, new, detail string
		line                   int
		seq                    uint64
	}{
		{"join", ls[3], strings.Replace(ls[3], viewID(links(3)), other, 1), "the record names host view " + short(other) + ", but the last view before it in this file is " + short(viewID(links(3))), 4, 4},
		{"base", ls[2], strings.Replace(ls[2], `"base_view":"`+viewID(links(2)), `"base_view":"`+other, 1), "the view is written as a change from view " + short(other) + ", but the last view before it in this file is " + short(viewID(links(2))), 3, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.old == c.new {
				t.Fatal("the edit changed nothing")
			}
			edited := rechain([]byte(strings.Replace(string(orig), c.old, c.new, 1)))
			os.WriteFile(path, edited, 0o600)
			_, err := Verify([]string{path}, VerifyOptions{})
			wantProblem(t, err, UnknownView, c.line, c.seq, c.detail)
		})
	}
}

// A label or option named host_view is not the record's view: verify reads
// the view a record names as json does, whatever the labels hold.
func TestVerifyReadsTheViewAJoinNamesNotALabel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := Open(path, nil)
	labels := map[string]string{"host_view": "not-a-view", "HOST_VIEW": "nor-this"}
	for _, r := range []Record{
		{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, View: links(2), Container: &Container{ID: "c1", Labels: labels}},
		{Time: time.Now().UTC(), Event: EndpointAttribute, Outcome: OK, Container: &Container{ID: "c1", Labels: map[string]string{"host_view": "x"}}},
		{Time: time.Now().UTC(), Event: EndpointAttribute, Outcome: OK, Options: map[string]any{"host_view": "y"}},
	} {
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

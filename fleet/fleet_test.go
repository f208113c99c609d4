package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// timeAt is at(s), for a record's pointer fields.
func timeAt(s int) *time.Time { v := at(s); return &v }

func seconds(f float64) *float64 { return &f }

// containerAt is container id (its ID id repeated to 64 characters), started at s.
func containerAt(id string, s int) *audit.Container {
	return &audit.Container{ID: strings.Repeat(id, 32), Name: id, StartedAt: timeAt(s)}
}

// endpointRecord is event e of endpoint id on network "net", at s.
func endpointRecord(s int, e audit.Event, id string) audit.Record {
	return audit.Record{Time: at(s), Event: e, NetworkID: "net", EndpointID: id}
}

// logOf writes recs, as host's, to a log of its own and returns it as a
// source.
func logOf(t *testing.T, host string, recs ...audit.Record) Source {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.OpenWith(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Host == "" {
			r.Host = host
		}
		if r.Outcome == "" {
			r.Outcome = audit.OK
		}
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := LogHost([]string{path})
	if err != nil || got != host {
		t.Fatalf("LogHost = %q, %v; want %q", got, err, host)
	}
	return Source{Name: path, Files: []string{path}, Host: host}
}

// Rows merge by time, but a host's own records keep their seq order even
// where its clock stepped back: the merge never reorders a log.
func TestShowMergesByTimeKeepingEachLogsOrder(t *testing.T) {
	a := logOf(t, "a",
		audit.Record{Time: at(0), Event: audit.NetworkCreate},
		audit.Record{Time: at(10), Event: audit.NetworkCreate},
		audit.Record{Time: at(5), Event: audit.NetworkCreate}, // the clock stepped back
		audit.Record{Time: at(20), Event: audit.NetworkCreate})
	b := logOf(t, "b",
		audit.Record{Time: at(7), Event: audit.NetworkCreate},
		audit.Record{Time: at(10), Event: audit.NetworkCreate},
		audit.Record{Time: at(30), Event: audit.NetworkCreate})
	var got []string
	err := Show([]Source{a, b}, audit.Filter{}, "", func(r Row) error {
		got = append(got, fmt.Sprintf("%s%d@%d", r.Host, r.Entry.Seq, int(r.Entry.Time.Sub(t0).Seconds())))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// a2@10 and b2@10 tie: the first source's first.
	want := "a1@0 b1@7 a2@10 a3@5 b2@10 a4@20 b3@30"
	if strings.Join(got, " ") != want {
		t.Errorf("rows %s\nwant %s", strings.Join(got, " "), want)
	}
}

func sessionsText(t *testing.T, sources []Source, f SessionFilter) string {
	t.Helper()
	ss, err := Sessions(sources, f)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, s := range ss {
		to, d := "-", "?"
		if !s.Open {
			to = fmt.Sprint(int(s.To.Sub(t0).Seconds()))
		}
		if s.Duration != nil {
			d = fmt.Sprint(*s.Duration)
		}
		line := fmt.Sprintf("%s %s %s %d-%s %s", s.Host, s.Task, s.Mode, int(s.From.Sub(t0).Seconds()), to, d)
		if s.Open {
			line += " open"
		}
		if s.NoJoin {
			line += " nojoin"
		}
		if s.Cut != "" {
			line += " " + strings.Join(strings.Fields(s.Cut)[:3], "-")
		}
		if s.LateLeave {
			line += " late"
		}
		if s.Stale {
			line += " stale"
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// Sessions pair as audit prove pairs them, and say where they cannot tell.
func TestSessions(t *testing.T) {
	attr := endpointRecord(2, audit.EndpointAttribute, "e1")
	attr.Container, attr.NetworkName = containerAt("w1", 1), "fleetnet"
	a := logOf(t, "a",
		audit.Record{Time: at(0), Event: audit.HostJoin, Container: containerAt("h1", 0)},
		endpointRecord(1, audit.EndpointJoin, "e1"),
		attr,
		endpointRecord(3, audit.EndpointJoin, "e9"), // never attributed
		audit.Record{Time: at(4), Event: audit.HostJoin, Outcome: audit.Refused, Container: containerAt("h2", 4)},
		// hostpass restarted: calls in the window are lost, endpoint
		// sessions open then are cut; the reconciling watcher records h1's
		// run again, which is the same session.
		audit.Record{Time: at(10), Event: audit.Restart},
		audit.Record{Time: at(11), Event: audit.WatchGap, Gap: &audit.Gap{From: at(9), To: at(11), Covered: true}},
		audit.Record{Time: at(11), Event: audit.HostJoin, Container: containerAt("h1", 0), ObservedLate: true},
		endpointRecord(20, audit.EndpointLeave, "e1"),
		audit.Record{Time: at(30), Event: audit.HostLeave, Container: containerAt("h1", 0), HostModeSeconds: seconds(30)},
		// a leave whose join the log does not hold (another run of h3)
		audit.Record{Time: at(40), Event: audit.HostLeave, Container: &audit.Container{ID: strings.Repeat("h3", 32), Name: "h3"}, HostModeSeconds: seconds(15)},
		// a run whose end the watcher could not tell, seen late
		audit.Record{Time: at(41), Event: audit.HostJoin, Container: containerAt("h4", 41)},
		audit.Record{Time: at(45), Event: audit.HostLeave, Container: containerAt("h4", 41), ObservedLate: true, Detail: "the container was gone"},
		audit.Record{Time: at(50), Event: audit.NetworkDelete},
	)
	got := sessionsText(t, []Source{a}, SessionFilter{})
	want := strings.Join([]string{
		"a h1 host 0-30 30",
		"a w1 hostpass:fleetnet 1-20 ? cut-by-audit.restart",
		"a - hostpass:net 3-- ? open cut-by-audit.restart",
		"a h3 host 25-40 15 nojoin",
		"a h4 host 41-45 ? end-unknown:-its late",
	}, "\n")
	got = strings.ReplaceAll(got, "a  hostpass", "a - hostpass")
	if got != want {
		t.Errorf("sessions:\n%s\nwant:\n%s", got, want)
	}
	// The window: sessions that overlap it.
	if got := strings.ReplaceAll(sessionsText(t, []Source{a}, SessionFilter{Since: at(21), Until: at(35)}), "a  hostpass", "a - hostpass"); got != "a h1 host 0-30 30\na - hostpass:net 3-- ? open cut-by-audit.restart\na h3 host 25-40 15 nojoin" {
		t.Errorf("--since 21s --until 35s:\n%s", got)
	}
}

// A host just set up has an empty log: it has no host yet, and nothing to
// show, rather than failing the fleet.
func TestEmptyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if host, err := LogHost([]string{path}); host != "" || err != nil {
		t.Fatalf("LogHost = %q, %v", host, err)
	}
	empty := Source{Name: path, Files: []string{path}}
	a := logOf(t, "a", audit.Record{Time: at(0), Event: audit.NetworkCreate})
	n := 0
	if err := Show([]Source{empty, a}, audit.Filter{}, "", func(Row) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("show: %d rows, %v", n, err)
	}
}

// Endpoints whose Leave Docker never sent (a dockerd crash) end at their
// endpoint.stale, observed late: with a duration up to ended_at when the
// record has it, also across an audit.restart that cut them; else with the
// end unknown. One whose join is before the log takes its container from
// the record. A leave after the endpoint.stale ends nothing more. Nothing
// stays open.
func TestSessionsEndAtEndpointStale(t *testing.T) {
	attr := func(s int, id, name string) audit.Record {
		r := endpointRecord(s, audit.EndpointAttribute, id)
		r.Container, r.NetworkName = &audit.Container{ID: strings.Repeat(name, 32), Name: name}, "fleetnet"
		r.Swarm = &audit.SwarmTask{ServiceName: "web", ServiceID: "svc", TaskID: "t-" + name, TaskName: "web.1." + name, NodeID: "n2"}
		return r
	}
	stale := func(s int, id, name string, end *time.Time) audit.Record {
		r := endpointRecord(s, audit.EndpointStale, id)
		r.Container, r.NetworkName, r.EndedAt, r.ObservedLate = &audit.Container{ID: strings.Repeat(name, 32), Name: name, StartedAt: timeAt(0)}, "fleetnet", end, true
		r.Swarm = &audit.SwarmTask{ServiceName: "web", ServiceID: "svc", TaskID: "t-" + name, TaskName: "web.1." + name, NodeID: "n2"}
		return r
	}
	a := logOf(t, "b",
		endpointRecord(1, audit.EndpointJoin, "e1"), attr(2, "e1", "x1"),
		endpointRecord(3, audit.EndpointJoin, "e2"), attr(4, "e2", "x2"),
		audit.Record{Time: at(30), Event: audit.Restart}, // dockerd, and the plugin with it, was killed
		stale(31, "e1", "x1", timeAt(20)),
		stale(32, "e2", "x2", nil),
		stale(33, "e3", "x3", timeAt(25)),             // joined before the log began
		endpointRecord(34, audit.EndpointLeave, "e1"), // Docker's Leave after all: it ends nothing more
		endpointRecord(35, audit.EndpointLeave, "e8"), // joined before the log began, never attributed
	)
	ss, err := Sessions([]Source{a}, SessionFilter{Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	got := sessionsText(t, []Source{a}, SessionFilter{Service: "web"})
	want := strings.Join([]string{
		"b web.1.x3 hostpass:fleetnet 0-33 25 nojoin late stale",
		"b web.1.x1 hostpass:fleetnet 1-31 19 late stale",
		"b web.1.x2 hostpass:fleetnet 3-32 ? end-unknown:-its late stale",
	}, "\n")
	if got != want {
		t.Errorf("sessions:\n%s\nwant:\n%s", got, want)
	}
	if all := sessionsText(t, []Source{a}, SessionFilter{}); all != want+"\nb  hostpass:net 35-35 ? nojoin start-unknown:-the" {
		t.Errorf("sessions, unfiltered:\n%s\nwant:\n%s", all, want)
	}
	for _, s := range ss {
		if s.Task == "web.1.x1" && s.ToSeq != 6 {
			t.Errorf("x1's session ends at seq %d, want 6 (its endpoint.stale)", s.ToSeq)
		}
		if s.Task == "web.1.x2" && !strings.Contains(s.Cut, "endpoint.stale (seq 7)") {
			t.Errorf("x2's session: cut %q, want it to name its endpoint.stale", s.Cut)
		}
	}
}

// A clock stepped back gives no negative duration: the session says why
// it has none; an open session runs to the latest time seen; a window
// keeps a session that overlaps it even where its leave's time is earlier
// than its join's. Host mode's duration is host_mode_seconds, not TO less
// FROM.
func TestSessionsClockSteppedBack(t *testing.T) {
	a := logOf(t, "a",
		audit.Record{Time: at(100), Event: audit.HostJoin, Container: containerAt("h1", 100)},
		audit.Record{Time: at(50), Event: audit.HostLeave, Container: containerAt("h1", 100), HostModeSeconds: seconds(-50)},
		endpointRecord(100, audit.EndpointJoin, "e1"),
		endpointRecord(90, audit.EndpointLeave, "e1"),
		audit.Record{Time: at(0), Event: audit.HostJoin, Container: containerAt("h5", 0)},
		audit.Record{Time: at(100), Event: audit.HostLeave, Container: containerAt("h5", 0), HostModeSeconds: seconds(42)},
		audit.Record{Time: at(200), Event: audit.HostJoin, Container: containerAt("h2", 200)},
		audit.Record{Time: at(260), Event: audit.NetworkCreate},
		audit.Record{Time: at(150), Event: audit.NetworkCreate},
		endpointRecord(300, audit.EndpointJoin, "e2"),
		endpointRecord(290, audit.EndpointLeave, "e2"),
	)
	fix := func(s string) string { return strings.ReplaceAll(s, "a  hostpass", "a - hostpass") }
	want := strings.Join([]string{
		"a h5 host 0-100 42",
		"a h1 host 100-50 ? duration-unknown:-its",
		"a - hostpass:net 100-90 ? duration-unknown:-its",
		"a h2 host 200-- 100 open",
		"a - hostpass:net 300-290 ? duration-unknown:-its",
	}, "\n")
	if got := fix(sessionsText(t, []Source{a}, SessionFilter{})); got != want {
		t.Errorf("sessions:\n%s\nwant:\n%s", got, want)
	}
	if got := fix(sessionsText(t, []Source{a}, SessionFilter{Since: at(295), Until: at(400)})); got != "a h2 host 200-- 100 open\na - hostpass:net 300-290 ? duration-unknown:-its" {
		t.Errorf("--since 295s --until 400s:\n%s", got)
	}
}

// One source naming more than MaxHosts hosts is refused by name, rather
// than held host by host.
func TestSessionsBoundsHosts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "received.log")
	var b strings.Builder
	for i := 0; i <= MaxHosts; i++ {
		fmt.Fprintf(&b, `<86>1 2026-11-27T10:00:00Z h%d hostpass 1 audit.start [hostpass@32473 seq="1"] {"time":"2026-11-27T10:00:00Z","seq":1,"event":"audit.start","host":"h%d"}`+"\n", i, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := Sessions([]Source{{Name: path, Files: []string{path}, Collector: true}}, SessionFilter{})
	if want := fmt.Sprintf("%s: refused: records of more than %d hosts", path, MaxHosts); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// An endpoint.stale whose ended_at is earlier than the endpoint's join (a
// clock stepped back) gives no duration, not 0s: the session says why.
func TestSessionsStaleEndedBeforeItsJoin(t *testing.T) {
	end := at(380)
	a := logOf(t, "a",
		audit.Record{Time: at(400), Event: audit.EndpointJoin, NetworkID: "net", EndpointID: "e3"},
		audit.Record{Time: at(410), Event: audit.EndpointStale, NetworkID: "net", EndpointID: "e3", EndedAt: &end, ObservedLate: true},
	)
	if got, want := sessionsText(t, []Source{a}, SessionFilter{}), "a  hostpass:net 400-410 ? duration-unknown:-its late stale"; got != want {
		t.Errorf("sessions:\n%s\nwant:\n%s", got, want)
	}
	ss, err := Sessions([]Source{a}, SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := "duration unknown: its endpoint.stale (seq 2) gives ended_at " + end.Format(time.RFC3339Nano) + ", earlier than its join (" + at(400).Format(time.RFC3339Nano) + "): the host's clock stepped back"
	if len(ss) != 1 || ss[0].Duration != nil || ss[0].Cut != want {
		t.Errorf("sessions %+v, want one with no duration and cut %q", ss, want)
	}
}

package audit

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// hostRun is a container's run in host mode as the watcher records it: a
// host.join at the connect, whose started_at is the connect's time (the
// process has not started yet), and a host.leave whose started_at is the
// run's start, a moment later, with how long it lasted.
func hostRun(l *handLog, c Container, connect time.Time, d time.Duration) {
	join, leave := c, c
	started := connect.Add(3 * time.Millisecond)
	join.StartedAt, leave.StartedAt = &connect, &started
	secs := (d - 3*time.Millisecond).Seconds()
	l.add(Record{Time: connect.Add(time.Millisecond), Event: HostJoin, Outcome: OK, Container: &join})
	l.add(Record{Time: connect.Add(d), Event: HostLeave, Outcome: OK, Container: &leave, HostModeSeconds: &secs})
}

// sessionsOf proves container q's records of l, keeps the bundle's records
// keep (by index), and returns what check-proof says they prove.
func sessionsOf(t *testing.T, l *handLog, q string, keep ...int) []string {
	t.Helper()
	b, err := Prove([]string{l.write(t.TempDir())}, ProveQuery{Container: q})
	if err != nil {
		t.Fatal(err)
	}
	if keep != nil {
		var rs []BundleRecord
		for _, i := range keep {
			rs = append(rs, b.Records[i])
		}
		b.Records = rs
	}
	p, err := CheckBundle(b, l.pub())
	if err != nil {
		t.Fatal(err)
	}
	return p.Sessions()
}

func wantSessions(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sessions\n%q\nwant\n%q", got, want)
	}
}

// Two one-minute runs a month apart; the bundle's holder drops the first
// host.leave and the second host.join. Before, check-proof read "in host
// mode from 11-27 to 12-27"; now each leave ends its own run only.
func TestSessionsNotStitched(t *testing.T) {
	l := newHandLog(t)
	l.checkpoint(CheckpointStart)
	c := Container{ID: webID, Name: "web"}
	t0 := signedStart.Add(time.Hour)
	hostRun(l, c, t0, time.Minute)
	hostRun(l, c, t0.Add(720*time.Hour), time.Minute)
	l.checkpoint(CheckpointStop)

	wantSessions(t, sessionsOf(t, l, "web"),
		"container web (c0ffee12c0ff) was in host mode on host node1 from 2026-11-27T11:00:00.001Z (seq 2 host.join) to 2026-11-27T11:01:00Z (seq 3 host.leave)",
		"container web (c0ffee12c0ff) was in host mode on host node1 from 2026-12-27T11:00:00.001Z (seq 4 host.join) to 2026-12-27T11:01:00Z (seq 5 host.leave)")
	wantSessions(t, sessionsOf(t, l, "web", 0, 3),
		"container web (c0ffee12c0ff) left host mode on host node1 at 2026-12-27T11:01:00Z (seq 5 host.leave), ending a session that its record says began at 2026-12-27T11:00:00.003Z; this bundle holds no host.join of that session",
		"container web (c0ffee12c0ff) was in host mode on host node1 from 2026-11-27T11:00:00.001Z (seq 2 host.join); this bundle holds no leave of that session: the host.leave after it (seq 5) ends another, so its own leave is not in the bundle")
	wantSessions(t, sessionsOf(t, l, "web", 0),
		"container web (c0ffee12c0ff) was in host mode on host node1 from 2026-11-27T11:00:00.001Z (seq 2 host.join), and this bundle holds no leave after it")
}

// A leave without its started_at is paired by its time less
// host_mode_seconds; one that gives neither ends no join's session.
func TestSessionsLeaveStart(t *testing.T) {
	l := newHandLog(t)
	l.checkpoint(CheckpointStart)
	t0 := signedStart.Add(time.Hour)
	join := Container{ID: webID, Name: "web", StartedAt: &t0}
	secs := 90.0
	l.add(Record{Time: t0, Event: HostJoin, Outcome: OK, Container: &join})
	l.add(Record{Time: t0.Add(90 * time.Second), Event: HostLeave, Outcome: OK, Container: &Container{ID: webID, Name: "web"}, HostModeSeconds: &secs})
	l.add(Record{Time: t0.Add(time.Hour), Event: HostJoin, Outcome: OK, Container: &join})
	l.add(Record{Time: t0.Add(2 * time.Hour), Event: HostLeave, Outcome: OK, Container: &Container{ID: webID, Name: "web"}})
	l.checkpoint(CheckpointStop)
	wantSessions(t, sessionsOf(t, l, "web"),
		"container web (c0ffee12c0ff) was in host mode on host node1 from 2026-11-27T11:00:00Z (seq 2 host.join) to 2026-11-27T11:01:30Z (seq 3 host.leave)",
		"container web (c0ffee12c0ff) left host mode on host node1 at 2026-11-27T13:00:00Z (seq 5 host.leave), ending a session whose start its record does not give; this bundle holds no host.join of that session",
		"container web (c0ffee12c0ff) was in host mode on host node1 from 2026-11-27T12:00:00Z (seq 4 host.join); this bundle holds no leave of that session: the host.leave after it (seq 5) ends another, so its own leave is not in the bundle")
}

// An endpoint.leave whose endpoint.join is not in the bundle is said to be
// so; before, it was left out of what the bundle proves without a word.
func TestSessionsEndpointLeaveAlone(t *testing.T) {
	l, path := story(t)
	b, err := Prove([]string{path}, ProveQuery{Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	var rs []BundleRecord
	for _, r := range b.Records {
		var rec Record
		if err := json.Unmarshal([]byte(r.Line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Event != EndpointJoin {
			rs = append(rs, r)
		}
	}
	b.Records = rs
	p, err := CheckBundle(b, l.pub())
	if err != nil {
		t.Fatal(err)
	}
	wantSessions(t, p.Sessions(),
		"container web (c0ffee12c0ff) left hostpass network net1 (endpoint ep1) on host node1 at 2026-11-27T10:00:10Z (seq 11 endpoint.leave); this bundle holds no endpoint.join of that endpoint")
}

// An endpoint whose Leave Docker never sent (a dockerd crash) is ended by
// the watcher's endpoint.stale: the container's bundle holds it (also one
// of an endpoint attributed before the log), and check-proof ends the
// endpoint's session at its ended_at, as audit sessions does; an
// endpoint.leave after it ends nothing more. Before, the bundle held no
// endpoint.stale and read "and this bundle holds no leave after it".
func TestSessionsEndAtEndpointStale(t *testing.T) {
	l := newHandLog(t)
	l.checkpoint(CheckpointStart)
	web := &Container{ID: webID, Name: "web"}
	ep := func(e Event, id string) Record {
		return Record{Event: e, Outcome: OK, Driver: "hostpass", NetworkID: "net1", EndpointID: id}
	}
	attr := func(id string) Record {
		r := ep(EndpointAttribute, id)
		r.Container = web
		return r
	}
	stale := func(id string, end *time.Time) Record {
		r := ep(EndpointStale, id)
		r.Container, r.EndedAt, r.ObservedLate = web, end, true
		return r
	}
	crash := signedStart.Add(4 * time.Second)
	l.add(ep(EndpointJoin, "ep1")) // seq 2, 10:00:01
	l.add(attr("ep1"))
	l.add(ep(EndpointJoin, "ep2"))
	l.add(attr("ep2"))
	l.add(stale("ep1", &crash))     // seq 6
	l.add(stale("ep2", nil))        // seq 7
	l.add(ep(EndpointLeave, "ep1")) // seq 8: Docker's Leave after all
	l.add(stale("ep3", &crash))     // seq 9: attributed before the log
	l.checkpoint(CheckpointStop)

	b, err := Prove([]string{l.write(t.TempDir())}, ProveQuery{Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range b.Records {
		seqs = append(seqs, uint64(r.Leaf)+1)
	}
	if fmt.Sprint(seqs) != "[2 3 4 5 6 7 8 9]" {
		t.Errorf("records %v, want seqs 2 to 9 (the joins, attributions, endpoint.stale records and the leave)", seqs)
	}
	wantSessions(t, sessionsOf(t, l, "web"),
		"container web (c0ffee12c0ff) was attached to hostpass network net1 (endpoint ep1) on host node1 from 2026-11-27T10:00:01Z (seq 2 endpoint.join) to 2026-11-27T10:00:04Z (the ended_at of seq 6 endpoint.stale, written at 2026-11-27T10:00:05Z: Docker sent no Leave for the endpoint)",
		"container web (c0ffee12c0ff) was attached to hostpass network net1 (endpoint ep2) on host node1 from 2026-11-27T10:00:03Z (seq 4 endpoint.join) to an unknown time (seq 7 endpoint.stale, written at 2026-11-27T10:00:06Z: Docker sent no Leave for the endpoint, and no longer said when the container stopped)",
		"container web (c0ffee12c0ff) left hostpass network net1 (endpoint ep1) on host node1 at 2026-11-27T10:00:07Z (seq 8 endpoint.leave): Docker's Leave after all, after the endpoint.stale (seq 6) that ended that session",
		"container web (c0ffee12c0ff) left hostpass network net1 (endpoint ep3) on host node1 at 2026-11-27T10:00:04Z (the ended_at of seq 9 endpoint.stale, written at 2026-11-27T10:00:08Z: Docker sent no Leave for the endpoint); this bundle holds no endpoint.join of that endpoint")
}

// An endpoint.stale whose ended_at is earlier than the endpoint's join (a
// clock stepped back) ends its session at an unknown time, and says why.
func TestSessionsStaleEndedBeforeItsJoin(t *testing.T) {
	l := newHandLog(t)
	l.checkpoint(CheckpointStart)
	join := Record{Event: EndpointJoin, Outcome: OK, Driver: "hostpass", NetworkID: "net1", EndpointID: "ep1"}
	attr := join
	attr.Event, attr.Container = EndpointAttribute, &Container{ID: webID, Name: "web"}
	before := signedStart
	stale := attr
	stale.Event, stale.EndedAt = EndpointStale, &before
	l.add(join)
	l.add(attr)
	l.add(stale)
	l.checkpoint(CheckpointStop)
	wantSessions(t, sessionsOf(t, l, "web"),
		"container web (c0ffee12c0ff) was attached to hostpass network net1 (endpoint ep1) on host node1 from 2026-11-27T10:00:01Z (seq 2 endpoint.join) to an unknown time (seq 4 endpoint.stale, written at 2026-11-27T10:00:03Z: Docker sent no Leave for the endpoint; its ended_at 2026-11-27T10:00:00Z is earlier than the join: the host's clock stepped back)")
}

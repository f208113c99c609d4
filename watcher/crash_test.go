package watcher

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// waitFor polls until ok, or fails the test after 10 s.
func (h *harness) waitFor(what string, ok func([]audit.Record) bool) []audit.Record {
	h.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if recs := h.records(); ok(recs) {
			return recs
		}
	}
	h.t.Fatalf("timed out waiting for %s; records: %s", what, names(h.records()))
	return nil
}

func count(recs []audit.Record, event audit.Event) int {
	n := 0
	for _, r := range recs {
		if r.Event == event {
			n++
		}
	}
	return n
}

// crash stops the watcher and puts back the state file as it was at stale,
// as when kill -9 lands after a record is durable and before the state
// file that reflects it is written (up to saveEvery later).
func (h *harness) crash(stop func(), stale []byte) {
	h.t.Helper()
	stop()
	if err := os.WriteFile(filepath.Join(h.dir, stateFile), stale, 0o600); err != nil {
		h.t.Fatal(err)
	}
	h.restart()
}

func (h *harness) stateBytes() []byte {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, stateFile))
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// A crash between a durable record and the state file that reflects it:
// after the restart, the records are read back from the audit log, and
// reconciliation invents no second host.join, nor a second host.leave.
func TestCrashBeforeTheStateIsSavedInventsNothing(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		stop := h.run()
		s := <-h.fake.streams
		h.fake.listed(t, 1)
		s = h.settle(s) // the state is saved, with no session
		stale := h.stateBytes()
		c := newContainer("c1", "web", "nginx:1", true, "host")
		h.fake.set(c)
		// The watcher saw c1 connect while not running yet: a provisional start.
		pending := c
		pending.Running = false
		h.fake.set(pending)
		s.events <- h.wire(hostEvent("connect", "c1", t0.Add(-time.Millisecond)))
		h.waitFor("host.join", func(r []audit.Record) bool { return count(r, audit.HostJoin) == 1 })
		h.fake.set(c)
		h.crash(stop, stale)

		stop = h.run()
		s = <-h.fake.streams
		h.fake.listed(t, 3)
		// Reconciled once the saved session has the run's start.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if st := h.savedState(); st.Sessions["c1"].Start.Equal(t0) && !st.Sessions["c1"].Provisional {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("saved state %+v: want c1's session from its start", h.savedState())
			}
		}
		if recs := h.records(); names(recs) != "host.join" {
			t.Fatalf("after a crash at the join: records %s, want the one host.join", names(recs))
		}
		stale = h.stateBytes()

		c.Running, c.FinishedAt = false, t0.Add(time.Minute)
		h.fake.set(c)
		s.events <- h.wire(Event{Time: t0.Add(time.Minute), Type: "container", Action: "die", ContainerID: "c1"})
		h.waitFor("host.leave", func(r []audit.Record) bool { return count(r, audit.HostLeave) == 1 })
		h.crash(stop, stale)

		stop = h.run()
		defer stop()
		s = <-h.fake.streams
		h.settle(s)
		recs := h.records()
		if names(recs) != "host.join host.leave" {
			t.Fatalf("after a crash at the leave: records %s, want host.join host.leave; %+v", names(recs), recs)
		}
		if secs := recs[1].HostModeSeconds; secs == nil || *secs != 60 {
			t.Errorf("host.leave seconds %v, want 60", secs)
		}
	})
}

// A container that ended while the watcher was away: its session is
// closed when it ended (inspect's FinishedAt, else the die Docker
// remembers, which the replayed die then repeats harmlessly), or with the
// end unknown when nothing says; never at the watcher's own clock.
func TestGoneWhileAwayIsDatedByItsEnd(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		for _, id := range []string{"stopped", "removed", "forgotten"} {
			h.fake.set(newContainer(id, id, "busybox", true, "host"))
		}
		stop := h.run()
		<-h.fake.streams
		h.waitFor("3 host.join", func(r []audit.Record) bool { return count(r, audit.HostJoin) == 3 })
		stop()

		// Away: "stopped" exited and is still there; the two others were
		// removed, and Docker's history still has the die of "removed" only.
		c := newContainer("stopped", "stopped", "busybox", false, "host")
		c.FinishedAt = t0.Add(2 * time.Second)
		h.fake.set(c)
		h.fake.mu.Lock()
		delete(h.fake.containers, "removed")
		delete(h.fake.containers, "forgotten")
		h.fake.died = map[string]time.Time{"removed": t0.Add(3 * time.Second)}
		h.fake.mu.Unlock()
		h.restart()
		stop = h.run()
		defer stop()
		s := <-h.fake.streams
		s.events <- h.wire(Event{Time: t0.Add(3 * time.Second), Type: "container", Action: "die", ContainerID: "removed"})
		s.events <- h.wire(hostEvent("disconnect", "removed", t0.Add(3*time.Second)))
		h.settle(s)

		leaves := map[string]audit.Record{}
		for _, r := range h.records() {
			if r.Event == audit.HostLeave {
				if _, twice := leaves[r.Container.ID]; twice {
					t.Errorf("a second host.leave for %s", r.Container.ID)
				}
				leaves[r.Container.ID] = r
			}
		}
		for id, want := range map[string]float64{"stopped": 2, "removed": 3} {
			if l := leaves[id]; l.HostModeSeconds == nil || *l.HostModeSeconds != want {
				t.Errorf("host.leave of %s: seconds %v, want %v; records %s", id, l.HostModeSeconds, want, names(h.records()))
			}
		}
		if l := leaves["forgotten"]; l.HostModeSeconds != nil || !strings.Contains(l.Detail, "unknown") || !l.ObservedLate {
			t.Errorf("host.leave of forgotten %+v: want no duration, late, and the detail saying the end is unknown", l)
		}
	})
}

// Docker sends a network event for the container that connects, none for
// those in its namespace: they are placed all the same, and the policy
// applies to them.
func TestOwnerJoiningAHostpassNetworkBringsItsSharers(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "label:team=payments", true)
		stop := h.run()
		defer stop()
		s := <-h.fake.streams
		h.fake.listed(t, 1)
		x := newContainer("xown", "xown", "busybox", true, "bridge")
		x.Labels = map[string]string{"team": "payments"}
		h.fake.set(x)
		y := newContainer("yshare", "yshare", "busybox", true, "container:xown")
		h.fake.set(y)
		s.events <- h.wire(Event{Time: t0, Type: "container", Action: "start", ContainerID: "xown"})
		s.events <- h.wire(Event{Time: t0, Type: "container", Action: "start", ContainerID: "yshare"})
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) { // both starts handled
			h.w.mu.Lock()
			noted := h.w.sharers["xown"]["yshare"]
			h.w.mu.Unlock()
			if noted && h.w.lanes.pending() == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the start events were not handled")
			}
		}
		x.Endpoints = map[string]string{hpNet: "ep-xown"} // a new map: the fake holds the old one
		h.fake.set(x)
		s.events <- h.wire(Event{Time: t0.Add(time.Second), Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "xown"})
		h.settle(s)
		recs := h.records()
		if names(recs) != "endpoint.attribute endpoint.attribute policy.violation" {
			t.Fatalf("records %s, want xown's and yshare's endpoint.attribute and yshare's policy.violation", names(recs))
		}
		if a := recs[1]; a.Container.ID != "yshare" || a.Via == nil || a.Via.ID != "xown" || a.EndpointID != "ep-xown" {
			t.Errorf("attribution %+v via %+v: want yshare via xown on ep-xown", a.Container, a.Via)
		}
		if v := recs[2]; v.Container.ID != "yshare" || v.Action != "stopped" {
			t.Errorf("violation %+v action %q: want yshare stopped", v.Container, v.Action)
		}
	})
}

// A container in the namespace of one Docker no longer knows cannot be
// placed: it is recorded as such, once, never left unrecorded.
func TestSharerOfARemovedOwnerIsRecorded(t *testing.T) {
	h := newHarness(t, "all", false)
	h.fake.set(newContainer("yshare", "yshare", "busybox", true, "container:xgone"))
	stop := h.run()
	defer stop()
	s := <-h.fake.streams
	h.waitFor("container.unplaced", func(r []audit.Record) bool { return len(r) > 0 })
	h.settle(s) // a reconnect records nothing twice
	h.fake.listed(t, 2)
	time.Sleep(300 * time.Millisecond) // its reconciliation places yshare again
	recs := h.records()
	if names(recs) != "container.unplaced(late)" {
		t.Fatalf("records %s, want one container.unplaced(late)", names(recs))
	}
	if r := recs[0]; r.Outcome != audit.OK || r.Via == nil || r.Via.ID != "xgone" || !strings.Contains(r.Detail, "xgone, which Docker no longer knows") {
		t.Errorf("record outcome %q via %+v detail %q: want ok, via xgone, the detail naming it", r.Outcome, r.Via, r.Detail)
	}
}

// One inspect that hangs holds since back, and every event handled after
// it stays in memory until it is done: past maxBacklog of them the watcher
// lets the stream go and reconciles, rather than grow without bound.
func TestHungInspectIsBoundedByTheBacklog(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		h.w.maxBacklog = 1000
		release := make(chan struct{})
		h.fake.slow = map[string]chan struct{}{"stuck": release}
		h.fake.set(newContainer("other", "other", "busybox", true, "bridge"))
		stop := h.run()
		defer stop()
		s := <-h.fake.streams
		h.fake.listed(t, 1)
		s.events <- h.wire(Event{Time: t0, Type: "container", Action: "start", ContainerID: "stuck"})
		for i := 0; i < 5*h.w.maxBacklog; i++ {
			e := Event{Time: t0.Add(time.Duration(i+1) * time.Microsecond), Type: "container", Action: "start", ContainerID: "other"}
			select {
			case s.events <- h.wire(e):
			case <-time.After(time.Second): // no longer read: the watcher let the stream go
				if n := h.w.progress.pending(); n > h.w.maxBacklog {
					t.Errorf("%d events held, want at most %d", n, h.w.maxBacklog)
				}
				close(release)
				<-h.fake.streams // subscribed again once the stuck inspect is over
				return
			}
		}
		close(release)
		t.Fatalf("%d events read behind a hung inspect, %d held in memory: want the watcher to let the stream go past %d", 5*h.w.maxBacklog, h.w.progress.pending(), h.w.maxBacklog)
	})
}

// An inspect Docker never answers is given up after inspectTries, with a
// record saying so, and since moves on.
func TestHungInspectIsGivenUpWithARecord(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		h.w.callTimeout, h.w.inspectTries = 20*time.Millisecond, 2
		release := make(chan struct{})
		defer close(release)
		h.fake.slow = map[string]chan struct{}{"stuck": release}
		stop := h.run()
		defer stop()
		s := <-h.fake.streams
		h.fake.listed(t, 1)
		s.events <- h.wire(Event{Time: t0, Type: "container", Action: "start", ContainerID: "stuck", Name: "stuck"})
		recs := h.waitFor("container.unplaced", func(r []audit.Record) bool { return len(r) > 0 })
		want := fmt.Sprintf("Docker did not answer %d inspects of container stuck", 2)
		if names(recs) != "container.unplaced" || !strings.Contains(recs[0].Detail, want) {
			t.Fatalf("records %s %q, want container.unplaced saying %q", names(recs), recs[0].Detail, want)
		}
		for deadline := time.Now().Add(5 * time.Second); !h.w.progress.Since().Equal(t0); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("since %v, want it at the given-up event %v", h.w.progress.Since(), t0)
			}
		}
	})
}

// A state without audit_since (a first start that crashed before its first
// save, or a state saved by a watcher that saved after every event) reads
// back the current file only: a first run's records are there, and the
// rotation size bounds it, where the whole log may hold a million records.
func TestNoAuditSinceReadsTheCurrentFileOnly(t *testing.T) {
	h := newHarness(t, "all", false)
	now := time.Now().UTC()
	join := func(id string) {
		t.Helper()
		if err := h.log.Append(audit.Record{Time: now, Event: audit.HostJoin, Outcome: audit.OK, Host: "node1",
			Container: &audit.Container{ID: id, StartedAt: &now}}); err != nil {
			t.Fatal(err)
		}
	}
	join("rotated-away")
	if err := h.log.Rotate(); err != nil {
		t.Fatal(err)
	}
	join("current")
	if err := h.w.replayLog(); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.w.state.Sessions["current"]; !ok {
		t.Error("the host.join in the current file was not read back")
	}
	if _, ok := h.w.state.Sessions["rotated-away"]; ok {
		t.Error("a rotated file was read back with no audit_since")
	}
	h.w.state.AuditSince = now.Add(-time.Second)
	if err := h.w.replayLog(); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.w.state.Sessions["rotated-away"]; !ok {
		t.Error("with audit_since, the host.join in the rotated file was not read back")
	}
}

package watcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// send sends e on s as Docker would, noted in Docker's history, and waits
// until its records are durable (since reaches it).
func (h *harness) send(s stream, e Event) {
	h.t.Helper()
	h.fake.publish(e.Time)
	s.events <- h.wire(e)
	for deadline := time.Now().Add(5 * time.Second); !h.w.progress.Since().Equal(e.Time); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("since %v, want it at the event sent, %v", h.w.progress.Since(), e.Time)
		}
	}
}

// gapRecords waits for n watch.gap records and returns them, failing the
// test if there are more.
func (h *harness) gapRecords(n int) []audit.Record {
	h.t.Helper()
	h.gaps = true
	recs := h.waitFor(fmt.Sprint(n, " watch.gap"), func(r []audit.Record) bool { return count(r, audit.WatchGap) >= n })
	time.Sleep(100 * time.Millisecond) // a second record for one window would be written by now
	var gaps []audit.Record
	for _, r := range h.records() {
		if r.Event == audit.WatchGap {
			gaps = append(gaps, r)
		}
	}
	if len(gaps) != n {
		h.t.Fatalf("%d watch.gap records, want %d: %s", len(gaps), n, names(recs))
	}
	return gaps
}

// checkGap fails the test unless g is a window from within [fromAfter,
// fromBefore] to within [g.From, toBefore], covered or not as want, with a
// detail that says what each of says.
func checkGap(t *testing.T, g audit.Record, fromAfter, fromBefore, toBefore time.Time, covered bool, says ...string) {
	t.Helper()
	if g.Gap == nil || g.Container != nil || g.Outcome != audit.OK || g.Host != "node1" {
		t.Fatalf("watch.gap %+v: want a gap, no container, outcome ok, host node1", g)
	}
	if g.Gap.From.Before(fromAfter) || g.Gap.From.After(fromBefore) {
		t.Errorf("gap from %v, want between %v and %v", g.Gap.From, fromAfter, fromBefore)
	}
	if g.Gap.To.Before(g.Gap.From) || g.Gap.To.After(toBefore) {
		t.Errorf("gap to %v, want between its from %v and %v", g.Gap.To, g.Gap.From, toBefore)
	}
	if g.Gap.Covered != covered {
		t.Errorf("gap covered %v, want %v; detail %q", g.Gap.Covered, covered, g.Detail)
	}
	for _, s := range says {
		if !strings.Contains(g.Detail, s) {
			t.Errorf("gap detail %q, want it to say %q", g.Detail, s)
		}
	}
}

// Docker's stream breaks; the watcher tries again while Docker is down,
// then follows again: one watch.gap for the window, from the break to the
// resumption, covered as far as Docker's history still held the last event
// handled.
func TestGapAfterTheStreamBreaks(t *testing.T) {
	for _, c := range []struct {
		name    string
		away    func(f *fakeEngine) // what happens to Docker's history in the window
		covered bool
		says    string
	}{
		{"history_held", func(f *fakeEngine) { f.publish(t0.Add(2 * time.Second)) }, true,
			"Docker's replay from the last event handled, at 2026-11-28T10:00:01Z, held every event of the window"},
		{"dockerd_restarted", func(f *fakeEngine) { f.forget() }, false,
			"Docker's event history no longer held the last event handled, at 2026-11-28T10:00:01Z: Docker keeps its last 256 events and forgets them when it restarts; events of the window may be lost"},
		{"history_unknown", func(f *fakeEngine) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.remembersErr = errors.New("Cannot connect to the Docker daemon")
		}, false,
			"Docker did not say whether its event history still held the last event handled, at 2026-11-28T10:00:01Z (Cannot connect to the Docker daemon)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, "all", false)
			h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
			stop := h.run()
			defer stop()
			s := <-h.fake.streams
			h.fake.listed(t, 1)
			h.send(s, hostEvent("connect", "c1", t0.Add(time.Second)))

			c.away(h.fake)
			h.fake.mu.Lock()
			h.fake.down = true
			h.fake.mu.Unlock()
			broke := time.Now().UTC()
			s.errs <- errors.New("unexpected EOF")
			<-h.fake.streams // tried again while Docker is down: no record yet
			h.fake.listed(t, 2)
			if n := count(h.recordsWithGaps(), audit.WatchGap); n != 0 {
				t.Fatalf("%d watch.gap records while not following, want none until following resumes", n)
			}
			h.fake.mu.Lock()
			h.fake.down = false
			h.fake.mu.Unlock()
			<-h.fake.streams
			g := h.gapRecords(1)[0]
			checkGap(t, g, broke, broke.Add(time.Second), time.Now().UTC(), c.covered,
				"the watcher was not following Docker's events: Docker's event stream broke (unexpected EOF); ", c.says)
			if !c.covered && !strings.Contains(g.Detail, "a container that started and stopped inside the window is not in this log") {
				t.Errorf("detail %q: want it to say what reconciliation cannot see", g.Detail)
			}
		})
	}
}

// waitSaved waits until the saved state is as ok wants it.
func (h *harness) waitSaved(what string, ok func(state) bool) {
	h.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var st state
		if b, err := os.ReadFile(filepath.Join(h.dir, stateFile)); err == nil && json.Unmarshal(b, &st) == nil && ok(st) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the state was not saved %s", what)
		}
	}
}

// recordsWithGaps is records with the watch.gap records.
func (h *harness) recordsWithGaps() []audit.Record {
	h.gaps = true
	return h.records()
}

// More events than Docker keeps happened in the window: the last event
// handled is gone from its history, and the window is not covered.
func TestGapLongerThanTheReplayHoldsIsNotCovered(t *testing.T) {
	for _, extra := range []int{historySize - 1, historySize} {
		t.Run(fmt.Sprint(extra, "_events_in_the_window"), func(t *testing.T) {
			h := newHarness(t, "all", false)
			stop := h.run()
			defer stop()
			s := <-h.fake.streams
			h.fake.listed(t, 1)
			h.send(s, Event{Time: t0, Type: "container", Action: "start", ContainerID: "c1"})
			for i := 1; i <= extra; i++ { // image pulls, volumes, execs: Docker keeps them all
				h.fake.publish(t0.Add(time.Duration(i) * time.Millisecond))
			}
			h.settle(s)
			g := h.gapRecords(1)[0]
			covered := extra < historySize
			if g.Gap.Covered != covered {
				t.Errorf("%d events after the last handled: covered %v, want %v (Docker keeps %d); detail %q", extra, g.Gap.Covered, covered, historySize, g.Detail)
			}
		})
	}
}

// hostpass stops, and starts again: the window runs from the last moment
// the stopped run knew it was following (its clean stop), to the new
// run's reconciliation.
func TestGapAcrossACleanRestart(t *testing.T) {
	h := newHarness(t, "all", false)
	stop := h.run()
	s := <-h.fake.streams
	h.fake.listed(t, 1)
	h.send(s, Event{Time: t0, Type: "container", Action: "start", ContainerID: "c1"})
	stopping := time.Now().UTC()
	stop()
	stopped := time.Now().UTC()
	if st := h.savedState(); !st.Following || st.Followed.Before(stopping) || st.Followed.After(stopped) {
		t.Fatalf("saved state following %v at %v: want following, at the stop (%v to %v)", st.Following, st.Followed, stopping, stopped)
	}
	h.fake.publish(t0.Add(time.Second))
	h.restart()
	stop = h.run()
	defer stop()
	<-h.fake.streams
	g := h.gapRecords(1)[0]
	checkGap(t, g, stopping, stopped, time.Now().UTC(), true,
		"the watcher was not following Docker's events: hostpass was not running; ",
		"held every event of the window")
}

// hostpass crashes long after its state was last saved: the window starts
// at the last record the crashed run wrote (read back from the log), not at
// that save, and never before.
func TestGapAcrossACrashStartsAtTheLastRecord(t *testing.T) {
	h := newHarness(t, "all", false)
	stop := h.run()
	s := <-h.fake.streams
	h.fake.listed(t, 1)
	h.send(s, Event{Time: t0, Type: "container", Action: "start", ContainerID: "c1"})
	h.waitSaved("following, with since at the event", func(st state) bool { return st.Following && st.Since.Equal(t0) })
	stale := h.stateBytes()
	time.Sleep(50 * time.Millisecond)
	h.fake.set(newContainer("c2", "web", "nginx:1", true, "host"))
	h.send(s, hostEvent("connect", "c2", t0.Add(time.Second)))
	join := h.waitFor("host.join", func(r []audit.Record) bool { return count(r, audit.HostJoin) == 1 })[0]
	h.crash(stop, stale) // the state as saved before the join

	h.fake.forget() // and dockerd restarted meanwhile
	stop = h.run()
	defer stop()
	<-h.fake.streams
	g := h.gapRecords(1)[0]
	if !g.Gap.From.Equal(join.Time) {
		t.Errorf("gap from %v, want the crashed run's last record, its host.join at %v", g.Gap.From, join.Time)
	}
	checkGap(t, g, join.Time, join.Time, time.Now().UTC(), false, "hostpass was not running", "no longer held")
}

// A crash while not following: the next start records the window from the
// break, not from its own start.
func TestGapOpenAtACrashIsRecordedByTheNextStart(t *testing.T) {
	h := newHarness(t, "all", false)
	stop := h.run()
	s := <-h.fake.streams
	h.fake.listed(t, 1)
	h.send(s, Event{Time: t0, Type: "container", Action: "start", ContainerID: "c1"})
	h.fake.mu.Lock()
	h.fake.down = true
	h.fake.mu.Unlock()
	broke := time.Now().UTC()
	s.errs <- errors.New("unexpected EOF")
	<-h.fake.streams
	h.fake.listed(t, 2)
	stop()
	if st := h.savedState(); st.Following || st.Followed.Before(broke) || st.Followed.After(broke.Add(time.Second)) {
		t.Fatalf("saved state following %v at %v: want not following, since the break at %v", st.Following, st.Followed, broke)
	}
	h.restart()
	h.fake.mu.Lock()
	h.fake.down = false
	h.fake.mu.Unlock()
	stop = h.run()
	defer stop()
	<-h.fake.streams
	g := h.gapRecords(1)[0]
	checkGap(t, g, broke, broke.Add(time.Second), time.Now().UTC(), true,
		"Docker's event stream had broken before hostpass stopped, then hostpass was not running")
}

// Nothing missed, no record: a first start (the watcher never followed
// before, even when Docker answers only at its third try), and a stream
// that goes on.
func TestNoGapWhenNothingWasMissed(t *testing.T) {
	h := newHarness(t, "all", false)
	h.fake.down = true
	stop := h.run()
	defer stop()
	<-h.fake.streams
	<-h.fake.streams
	h.fake.listed(t, 2) // the second try failed too
	h.fake.mu.Lock()
	h.fake.down = false
	h.fake.mu.Unlock()
	s := <-h.fake.streams
	h.fake.listed(t, 3)
	h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
	h.send(s, hostEvent("connect", "c1", t0))
	h.send(s, Event{Time: t0.Add(time.Second), Type: "container", Action: "start", ContainerID: "c2"})
	time.Sleep(200 * time.Millisecond)
	if recs := h.recordsWithGaps(); names(recs) != "host.join" {
		t.Errorf("records %s, want the host.join only", names(recs))
	}
	h.waitSaved("following", func(st state) bool { return st.Following && !st.Followed.IsZero() })
}

// A stream the watcher let go (its backlog full) is no broken stream: the
// record says which it was.
func TestGapOfALetGoStreamSaysSo(t *testing.T) {
	h := newHarness(t, "all", false)
	h.w.following = true
	h.w.stoppedFollowing(fmt.Errorf("%w: 5 events read and not durable in order", errBehind))
	h.w.resumedFollowing(t.Context(), time.Time{})
	h.w.lanes.wait()
	g := h.gapRecords(1)[0]
	want := "the watcher was not following Docker's events: the watcher let Docker's event stream go (too many events wait to be handled: 5 events read and not durable in order); " +
		"the watcher had handled no event before it, so Docker's replay had nowhere to start from; "
	if !strings.HasPrefix(g.Detail, want) || g.Gap.Covered {
		t.Errorf("detail %q covered %v, want not covered, the detail starting %q", g.Detail, g.Gap.Covered, want)
	}
}

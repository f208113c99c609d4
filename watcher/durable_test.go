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
)

// settle breaks the stream s and waits for the watcher to subscribe again:
// by then every event read from s is handled (the watcher finishes them
// before it reconnects).
func (h *harness) settle(s stream) stream {
	h.t.Helper()
	s.errs <- errors.New("stream broken by the test")
	select {
	case next := <-h.fake.streams:
		return next
	case <-time.After(2 * time.Minute):
		h.t.Fatal("the watcher did not subscribe again")
		return stream{}
	}
}

func (h *harness) savedState() state {
	h.t.Helper()
	var st state
	b, err := os.ReadFile(filepath.Join(h.dir, stateFile))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

// blockLog makes the audit log unwritable: its directory's place is taken
// by a file. unblock gives the directory back.
func blockLog(t *testing.T, h *harness) (unblock func()) {
	t.Helper()
	blocker := filepath.Join(h.dir, "blocked")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.path = filepath.Join(blocker, "audit.jsonl")
	h.restart()
	return func() {
		if err := os.Remove(blocker); err != nil {
			t.Fatal(err)
		}
	}
}

// A host.join the audit log cannot take while the daemon stops must not be
// saved as recorded: after a restart with the log back, it is written.
func TestLostSessionWhenTheLogIsDownAcrossARestart(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		unblock := blockLog(t, h)
		stop := h.run()
		s := <-h.fake.streams
		h.fake.listed(t, 1)
		h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
		s.events <- h.wire(hostEvent("connect", "c1", t0))
		time.Sleep(1200 * time.Millisecond) // a few offers to the log, all refused
		stop()
		if st := h.savedState(); len(st.Sessions) != 0 || !st.Since.IsZero() {
			t.Fatalf("saved state %+v: want no session and since unset, as no record is durable", st)
		}

		unblock()
		h.restart()
		stop = h.run()
		defer stop()
		<-h.fake.streams
		deadline := time.Now().Add(5 * time.Second)
		for len(h.records()) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		recs := h.records()
		if names(recs) != "host.join(late)" || recs[0].Container.ID != "c1" {
			t.Fatalf("records after the restart: %s, want the host.join of c1, found by reconciling", names(recs))
		}
	})
}

// While the log is down, a container's events wait; once it is back, the
// record is written once, then the session and since are saved.
func TestRecordWrittenWhenTheLogComesBack(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		unblock := blockLog(t, h)
		stop := h.run()
		defer stop()
		s := <-h.fake.streams
		h.fake.listed(t, 1)
		c := newContainer("c1", "web", "nginx:1", true, "host")
		h.fake.set(c)
		s.events <- h.wire(hostEvent("connect", "c1", t0))
		c.Running, c.FinishedAt = false, t0.Add(time.Second)
		h.fake.set(c)
		s.events <- h.wire(Event{Time: t0.Add(time.Second), Type: "container", Action: "die", ContainerID: "c1"})
		time.Sleep(700 * time.Millisecond)
		unblock()
		s = h.settle(s)
		if got := names(h.records()); got != "host.join host.leave" {
			t.Fatalf("records %q, want host.join host.leave once the log is back", got)
		}
		stop()
		if st := h.savedState(); len(st.Sessions) != 0 || !st.Since.Equal(t0.Add(time.Second)) {
			t.Errorf("saved state %+v: want the session closed and since at the die", st)
		}
	})
}

// A host-mode container that restarted while the watcher was away: the
// reconciliation records the end of the old session and the new one; the
// replayed events of the restart, older than that, add nothing.
func TestReplayAfterReconcileInventsNothing(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		c := newContainer("c1", "web", "nginx:1", true, "host")
		h.fake.set(c)
		h.handle(t.Context(), hostEvent("connect", "c1", t0))
		h.w.save()

		// Away: c1 died and started again.
		died, restarted := t0.Add(time.Hour), t0.Add(time.Hour+2*time.Second)
		c.StartedAt, c.FinishedAt = restarted, died
		h.fake.set(c)
		h.restart()
		stop := h.run()
		defer stop()
		s := <-h.fake.streams
		for _, e := range []Event{ // Docker replays them from since
			{Time: died, Type: "container", Action: "die", ContainerID: "c1", Name: "web"},
			hostEvent("disconnect", "c1", died),
			hostEvent("connect", "c1", restarted.Add(-5*time.Millisecond)),
			{Time: restarted, Type: "container", Action: "start", ContainerID: "c1", Name: "web"},
		} {
			s.events <- h.wire(e)
		}
		h.settle(s)
		recs := h.records()
		if names(recs) != "host.join host.leave(late) host.join(late)" {
			t.Fatalf("records %s, want host.join host.leave(late) host.join(late)", names(recs))
		}
		if l := recs[1]; *l.HostModeSeconds != time.Hour.Seconds()+2 || !strings.Contains(l.Detail, "restarted") {
			t.Errorf("host.leave %+v: want the old session's length and the restart noted", l)
		}
		if j := recs[2]; !j.Container.StartedAt.Equal(restarted) {
			t.Errorf("host.join %+v: want the new run's start", j.Container)
		}
	})
}

// The reader never waits on handling: while one container's inspect hangs,
// the stream is read on and the other containers are recorded.
func TestOneSlowContainerHoldsUpNoOther(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		stop := h.run()
		defer stop()
		s := <-h.fake.streams
		h.fake.listed(t, 1)
		release := make(chan struct{})
		h.fake.mu.Lock()
		h.fake.slow = map[string]chan struct{}{"slow": release}
		h.fake.mu.Unlock()
		h.fake.set(newContainer("slow", "slow", "busybox", true, "host"))
		const others = 500
		for i := 0; i < others; i++ {
			h.fake.set(newContainer(fmt.Sprint("c", i), "", "busybox", true, "host"))
		}
		s.events <- h.wire(hostEvent("connect", "slow", t0))
		for i := 0; i < others; i++ {
			s.events <- h.wire(hostEvent("connect", fmt.Sprint("c", i), t0))
		}
		deadline := time.Now().Add(20 * time.Second)
		for len(h.records()) < others && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := len(h.records()); n != others {
			t.Fatalf("%d records while one inspect hangs, want the %d other containers' host.join", n, others)
		}
		close(release)
		h.settle(s)
		if n := len(h.records()); n != others+1 {
			t.Errorf("%d records, want %d", n, others+1)
		}
	})
}

// Past maxBacklog events waiting (the audit log down for long), the watcher
// lets the stream go; once the log is back it subscribes again and
// reconciles: every container is recorded once.
func TestBacklogFullResubscribesAndLosesNothing(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		unblock := blockLog(t, h)
		h.w.maxBacklog = 5
		stop := h.run()
		defer stop()
		s := <-h.fake.streams
		h.fake.listed(t, 1)
		const n = 10
		for i := 0; i < n; i++ {
			id := fmt.Sprint("c", i)
			h.fake.set(newContainer(id, id, "busybox", true, "host"))
			select {
			case s.events <- h.wire(hostEvent("connect", id, t0)):
			case <-time.After(300 * time.Millisecond): // no longer read: the watcher let the stream go
			}
		}
		unblock()
		<-h.fake.streams // subscribed again once the waiting records were written
		deadline := time.Now().Add(10 * time.Second)
		for len(h.records()) < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		recs := h.records()
		seen := map[string]int{}
		for _, r := range recs {
			seen[r.Container.ID]++
		}
		if len(recs) != n || len(seen) != n {
			t.Fatalf("records %s for %v, want one host.join for each of %d containers", names(recs), seen, n)
		}
	})
}

package watcher

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeObserver keeps what the watcher told it.
type fakeObserver struct {
	mu         sync.Mutex
	hostMode   []int // every count reported, in order
	reconnects int
	lags       []time.Duration
}

func (o *fakeObserver) HostMode(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hostMode = append(o.hostMode, n)
}

func (o *fakeObserver) Reconnected() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reconnects++
}

func (o *fakeObserver) WatcherLag(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lags = append(o.lags, d)
}

// gauge is the last host-mode count reported; -1: none yet.
func (o *fakeObserver) gauge() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.hostMode) == 0 {
		return -1
	}
	return o.hostMode[len(o.hostMode)-1]
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestObserverHostModeCountsSessionsAcrossRestart: the gauge follows the
// sessions the watcher holds, and a restarted watcher reports the ones its
// saved state left open, not zero.
func TestObserverHostModeCountsSessionsAcrossRestart(t *testing.T) {
	h := newHarness(t, "all", false)
	if g := h.obs.gauge(); g != 0 {
		t.Fatalf("host mode at a first start = %d, want 0", g)
	}
	ctx := context.Background()
	for _, id := range []string{"c1", "c2"} {
		h.fake.set(newContainer(id, "web-"+id, "nginx:1", true, "host"))
		h.handle(ctx, hostEvent("connect", id, t0))
	}
	if g := h.obs.gauge(); g != 2 {
		t.Fatalf("host mode after two host.join = %d, want 2", g)
	}
	h.handle(ctx, hostEvent("connect", "c1", t0)) // a replayed duplicate opens nothing
	h.handle(ctx, hostEvent("disconnect", "c1", t0.Add(time.Second)))
	if g := h.obs.gauge(); g != 1 {
		t.Fatalf("host mode after a host.leave = %d, want 1", g)
	}
	h.w.save()
	h.obs = &fakeObserver{}
	h.restart()
	if g := h.obs.gauge(); g != 1 {
		t.Fatalf("host mode reported by the restarted watcher = %d (reports %v), want 1: c2 is still in host mode", g, h.obs.hostMode)
	}
}

// TestObserverHostModeAfterCrash: a session whose host.join is in the audit
// log but not in the saved state (a crash before the save) is counted once
// the log is read back.
func TestObserverHostModeAfterCrash(t *testing.T) {
	h := newHarness(t, "all", false)
	h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
	h.handle(context.Background(), hostEvent("connect", "c1", t0))
	h.obs = &fakeObserver{}
	h.restart() // no save: as after kill -9
	if err := h.w.replayLog(); err != nil {
		t.Fatal(err)
	}
	if g := h.obs.gauge(); g != 1 {
		t.Fatalf("host mode after reading the log back = %d (reports %v), want 1", g, h.obs.hostMode)
	}
}

// TestObserverReconnectsAndLag: the first subscription is no reconnect; a
// broken stream followed again is one. A handled event's lag is the time
// since Docker's time on it.
func TestObserverReconnectsAndLag(t *testing.T) {
	h := newHarness(t, "all", false)
	stop := h.run()
	defer stop()
	s := <-h.fake.streams
	h.fake.listed(t, 1)
	h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
	// Docker's time: after the subscription began (a live event), and
	// some time before the watcher reads it.
	sent := time.Now()
	time.Sleep(30 * time.Millisecond)
	s.events <- h.wire(hostEvent("connect", "c1", sent))
	waitFor(t, "the event's lag", func() bool {
		h.obs.mu.Lock()
		defer h.obs.mu.Unlock()
		return len(h.obs.lags) == 1
	})
	h.obs.mu.Lock()
	lag, reconnects := h.obs.lags[0], h.obs.reconnects
	h.obs.mu.Unlock()
	if lag < 30*time.Millisecond || lag > time.Since(sent) {
		t.Errorf("lag %v, want from 30 ms to %v", lag, time.Since(sent))
	}
	if reconnects != 0 {
		t.Errorf("reconnects after the first subscription = %d, want 0", reconnects)
	}
	if g := h.obs.gauge(); g != 1 {
		t.Errorf("host mode = %d, want 1", g)
	}
	s.errs <- errors.New("dockerd restarted")
	<-h.fake.streams
	waitFor(t, "one reconnect", func() bool {
		h.obs.mu.Lock()
		defer h.obs.mu.Unlock()
		return h.obs.reconnects == 1
	})
}

// TestObserverLagSkipsReplayedEvents: an event Docker replays from before
// the subscription (stamped an hour ago: the daemon was down) is handled,
// but its hour is no lag: the histogram would read hours for every replay.
// A live event after it is observed as usual.
func TestObserverLagSkipsReplayedEvents(t *testing.T) {
	h := newHarness(t, "all", false)
	stop := h.run()
	defer stop()
	s := <-h.fake.streams
	h.fake.listed(t, 1)
	h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
	s.events <- h.wire(hostEvent("connect", "c1", time.Now().Add(-time.Hour)))
	waitFor(t, "the replayed event handled", func() bool { return h.obs.gauge() == 1 })
	h.fake.set(newContainer("c2", "api", "nginx:1", true, "host"))
	s.events <- h.wire(hostEvent("connect", "c2", time.Now()))
	waitFor(t, "the live event handled", func() bool { return h.obs.gauge() == 2 })
	waitFor(t, "the live event's lag", func() bool {
		h.obs.mu.Lock()
		defer h.obs.mu.Unlock()
		return len(h.obs.lags) >= 1
	})
	h.obs.mu.Lock()
	defer h.obs.mu.Unlock()
	if len(h.obs.lags) != 1 || h.obs.lags[0] >= time.Hour {
		t.Errorf("lags observed %v; want one, the live event's, not the replayed one's hour", h.obs.lags)
	}
}

// TestNilObserver: a watcher without an observer works as before.
func TestNilObserver(t *testing.T) {
	h := newHarness(t, "all", false)
	h.w.cfg.Observer = nil
	h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
	h.handle(context.Background(), hostEvent("connect", "c1", t0))
	if got := names(h.records()); got != "host.join" {
		t.Fatalf("records %q, want host.join", got)
	}
}

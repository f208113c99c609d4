package watcher

import "time"

// Observer hears what the watcher does, for metrics (package metrics). Its
// methods are called with the watcher's lock held or on its reading
// goroutine, so they must be quick and never block. A nil Observer in
// Config hears nothing.
type Observer interface {
	// HostMode: the watcher now holds n containers in host mode (--network
	// host, or the host's namespace through another container). Called at
	// start with the sessions the saved state and the audit log left open,
	// so a restarted daemon reports the containers still running, and after
	// every record that may open or close one.
	HostMode(n int)
	// Reconnected: the watcher follows Docker's events again, on a new
	// subscription, after the previous one broke or was let go.
	Reconnected()
	// WatcherLag: an event received live was handled, its records
	// durable, d after Docker's time on it. Events Docker replays from
	// before the subscription (after a restart or a reconnect) are not
	// observed: their lag is the downtime, which watch.gap records count.
	WatcherLag(d time.Duration)
}

// reportHostMode tells the observer how many host-mode sessions are open.
// Called with w.mu held.
func (w *Watcher) reportHostMode() {
	if w.cfg.Observer != nil {
		w.cfg.Observer.HostMode(len(w.state.Sessions))
	}
}

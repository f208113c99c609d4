package watcher

import (
	"time"

	"github.com/hostpass/hostpass/audit"
)

// replayLog brings the state up to the audit log. The state file is written
// at most every saveEvery, after the records it reflects: a crash (kill -9,
// power loss) loses the last moments of state, never a record. Records from
// AuditSince on may be missing from the saved state (watcher.go's save), so
// they are read back: sessions opened and closed, endpoints attributed,
// containers recorded as unplaced, endpoints recorded as stale. Without this the reconciliation that
// follows would record them a second time. Applying a record the state
// already shows changes nothing.
func (w *Watcher) replayLog() error {
	w.mu.Lock()
	since := w.state.AuditSince
	w.mu.Unlock()
	var attributes []audit.Record
	staled := map[string]int{}    // attribution key → the index in recs of its last endpoint.stale
	violated := map[string]bool{} // container@endpoint
	var recs []audit.Record
	var last time.Time // of the watcher's last record: it was following then (gap.go)
	err := audit.Replay(w.cfg.Audit.Path(), since, audit.WatcherEvents, func(r audit.Record) error {
		if r.Host != w.cfg.Host {
			return nil
		}
		if r.Time.After(last) {
			last = r.Time
		}
		if r.Container != nil {
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recordedAt(last)
	for _, r := range recs {
		id := r.Container.ID
		switch r.Event {
		case audit.HostJoin:
			start := r.Time
			if r.Container.StartedAt != nil {
				start = *r.Container.StartedAt
			}
			// Provisional: the record does not say whether its start was
			// the run's or the connect's; the start event or the
			// reconciliation sets it.
			w.state.Sessions[id] = session{Start: start, Provisional: true, Name: r.Container.Name, Image: r.Container.Image, Via: r.Via, Swarm: r.Swarm}
			w.state.settled[id] = start
		case audit.HostLeave:
			delete(w.state.Sessions, id)
			if r.Container.StartedAt != nil && r.HostModeSeconds != nil {
				// The end, in Docker's time: its events up to then are stale.
				w.state.settled[id] = r.Container.StartedAt.Add(time.Duration(*r.HostModeSeconds * float64(time.Second)))
			}
		case audit.EndpointAttribute:
			if r.EndpointID != "" {
				attributes = append(attributes, r)
			}
		case audit.PolicyViolation:
			violated[id+"@"+r.EndpointID] = true
		case audit.ContainerUnplaced:
			w.state.Unplaced[id] = true
		case audit.EndpointStale:
			// Written just before the attribution was forgotten: forget it.
			key := attributionKey(id, r.EndpointID, r.Via)
			delete(w.state.Attributed, key)
			staled[key] = len(attributes)
		}
	}
	w.reportHostMode() // the sessions the saved state missed are counted too
	for i, r := range attributes {
		// attribute notes an endpoint as attributed once the violation, if
		// any, is durable too: one that the policy refuses and that has no
		// violation record is attributed again, and its violation written.
		// The task is judged by the swarm identity the record kept whole,
		// not by its labels, which the record's bound may have cut.
		c := Container{Container: *r.Container}
		if !violated[r.Container.ID+"@"+r.EndpointID] && !w.cfg.Policy.allowsTask(c, r.Swarm) {
			continue
		}
		key := attributionKey(r.Container.ID, r.EndpointID, r.Via)
		if n, ok := staled[key]; ok && n > i {
			continue // an endpoint.stale after it forgot it
		}
		a := attribution{Container: r.Container.ID, Network: r.NetworkID, At: r.Time, Name: r.Container.Name, NetworkName: r.NetworkName, Swarm: r.Swarm}
		if r.Via != nil {
			a.Via = r.Via.ID
		}
		w.state.Attributed[key] = a
	}
	return nil
}

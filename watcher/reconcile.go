package watcher

import (
	"context"
	"time"
)

// reconcile compares the running containers with what the watcher has
// recorded: host-mode containers and hostpass endpoints it has no record of
// are recorded now, marked observed_late, and sessions whose container is
// gone are closed, and endpoints whose container stopped unseen are closed
// or forgotten (stale.go). For each container it notes the Docker time up to which
// its state is now established: replayed events from before then are stale.
// It runs before any event of the subscription is handled, in the lanes.
// At the watcher's start it first reads back the records written after the
// state was last saved (replay.go).
func (w *Watcher) reconcile(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, w.callTimeout)
	ids, err := w.cfg.Engine.Running(lctx)
	cancel()
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.state.settled = map[string]time.Time{}
	w.sharers = map[string]map[string]bool{}
	w.ownNamespace = map[string]bool{}
	w.mu.Unlock()
	if !w.replayed {
		if err := w.replayLog(); err != nil {
			w.cfg.Log.WithError(err).Error("watcher: cannot read back its records written since its state was last saved; a record of the last moments before a crash may be written twice")
		}
		w.replayed = true
	}
	running := map[string]bool{}
	runs := map[string]Container{} // the running containers inspected: their endpoints now
	for _, id := range ids {
		running[id] = true
		w.lanes.add(id, func() {
			c, err := w.inspect(ctx, id)
			if err != nil {
				return // gone meanwhile (its die follows), or recorded as unplaced
			}
			w.mu.Lock()
			runs[id] = c
			w.mu.Unlock()
			w.settle(id, c.StartedAt)
			if c.sharesWith() != "" {
				w.noteSharer(c)
			}
			w.place(ctx, c, c.StartedAt, true)
		})
	}
	w.lanes.wait()

	w.mu.Lock()
	var gone []string
	for id := range w.state.Sessions {
		if !running[id] {
			gone = append(gone, id)
		}
	}
	stale := map[string]attribution{} // their disconnect was missed
	rerun := map[string]time.Time{}   // of those, the ones whose container runs again: its start
	for key, a := range w.state.Attributed {
		if !running[a.Container] {
			stale[key] = a
			continue
		}
		// Running, but maybe again: a container restarted by its policy
		// after a dockerd crash keeps its ID and gets new endpoints, and
		// Docker never sent the Leave of the old one.
		owner := a.Container
		if a.Via != "" {
			owner = a.Via
		}
		if c, seen := runs[owner]; seen && !holds(c, endpointOf(key)) {
			stale[key] = a
			rerun[key] = runs[a.Container].StartedAt
		}
	}
	for id := range w.state.Unplaced {
		if !running[id] {
			delete(w.state.Unplaced, id)
		}
	}
	w.mu.Unlock()
	for _, id := range gone {
		w.lanes.add(id, func() { w.closeGone(ctx, id) })
	}
	w.lanes.wait()
	w.closeStale(ctx, stale, rerun)
	w.changed()
	return ctx.Err()
}

// closeGone ends the session of a container that stopped while the watcher
// was away, dated by when it stopped: inspect's FinishedAt while Docker still
// has the container, else the die event Docker still remembers. When neither
// says, the record says the end is unknown rather than invent one. Events
// from before the end are stale: the replayed die then writes nothing twice.
func (w *Watcher) closeGone(ctx context.Context, id string) {
	s, open := w.session(id)
	if !open {
		return
	}
	var end time.Time
	if c, err := w.inspect(ctx, id); err == nil && !c.Running && !c.FinishedAt.Before(s.Start) {
		end = c.FinishedAt
	} else {
		dctx, cancel := context.WithTimeout(ctx, w.callTimeout)
		end, _ = w.cfg.Engine.Died(dctx, id, s.Start)
		cancel()
	}
	if end.IsZero() {
		w.settle(id, time.Now().UTC())
		w.hostLeave(ctx, id, time.Time{}, true, "the container was removed while hostpass was not watching, and Docker no longer says when it stopped: the end of its host-mode session is unknown")
		return
	}
	w.settle(id, end)
	w.hostLeave(ctx, id, end, true, "the container stopped while hostpass was not watching")
}

// holds reports whether c's current endpoints include ep.
func holds(c Container, ep string) bool {
	for _, e := range c.Endpoints {
		if e == ep {
			return true
		}
	}
	return false
}

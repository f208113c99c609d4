package watcher

import (
	"context"
	"time"
)

// reconcile compares the running containers with what the watcher has
// recorded: host-mode containers and hostpass endpoints it has no record of
// are recorded now, marked observed_late, and sessions whose container is
// gone are closed. For each container it notes the Docker time up to which
// its state is now established: replayed events from before then are stale.
// It runs before any event of the subscription is handled, in the lanes.
func (w *Watcher) reconcile(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, callTimeout)
	ids, err := w.cfg.Engine.Running(lctx)
	cancel()
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.state.settled = map[string]time.Time{}
	w.mu.Unlock()
	running := map[string]bool{}
	for _, id := range ids {
		running[id] = true
		w.lanes.add(id, func() {
			c, err := w.inspect(ctx, id)
			if err != nil {
				return // gone meanwhile: its die event follows
			}
			w.settle(id, c.StartedAt)
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
	for ep, a := range w.state.Attributed {
		if !running[a.Container] {
			delete(w.state.Attributed, ep) // its disconnect was missed
		}
	}
	w.mu.Unlock()
	for _, id := range gone {
		w.lanes.add(id, func() {
			end := time.Now().UTC()
			if c, err := w.inspect(ctx, id); err == nil && !c.FinishedAt.IsZero() {
				end = c.FinishedAt
			}
			w.settle(id, end)
			w.hostLeave(ctx, id, end, true, "the container stopped while hostpass was not watching")
		})
	}
	w.lanes.wait()
	w.changed()
	return ctx.Err()
}

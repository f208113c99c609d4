package watcher

import (
	"context"
	"strings"
	"time"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/swarmtask"
)

// staleDetail is what an endpoint.stale record says of its endpoint.
const staleDetail = "its container is no longer running and Docker sent no Leave for the endpoint (its daemon restarted after a crash, say): " +
	"the log holds no endpoint.leave of it, and the driver was never told to let it go"

// rerunDetail is what an endpoint.stale says of an endpoint whose
// container runs again, with other endpoints.
const rerunDetail = "its container runs again with a new endpoint (restarted by its restart policy after its daemon crashed, say) and Docker sent no Leave for the endpoint: " +
	"the log holds no endpoint.leave of it, and the driver was never told to let it go; " +
	"ended_at is the start of the container's current run: the run that held this endpoint ended at or before it"

// closeStale handles the attributions reconcile found whose container is
// not running. Docker's disconnect of them was missed: when the log holds
// the driver's endpoint.leave (or endpoint.delete) of the endpoint, that
// record ends it and the attribution is only forgotten. Otherwise (after a
// crash of dockerd, Docker never calls the driver for the endpoints its
// containers held) the endpoint gets an endpoint.stale, dated like
// closeGone dates a host-mode session, and the attribution is forgotten
// once that record is durable: a crash before then writes it again at the
// next reconcile, and a crash after it is replayed (replay.go), so it is
// written once. An attribution of a container in the owner's namespace
// (Via) is forgotten: the owner's record ends the endpoint.
//
// rerun holds, for the attributions whose container runs again with other
// endpoints, the start of that run: the endpoint's use ended at or before
// it, never at the new run's FinishedAt.
func (w *Watcher) closeStale(ctx context.Context, stale map[string]attribution, rerun map[string]time.Time) {
	left, readable := w.leftSince(stale)
	for key, a := range stale {
		ep := endpointOf(key)
		if a.Via == "" && !readable {
			continue // kept: the next reconciliation reads the log again
		}
		if a.Via != "" || left[ep] {
			w.mu.Lock()
			delete(w.state.Attributed, key)
			w.mu.Unlock()
			continue
		}
		w.lanes.add(a.Container, func() { w.endpointStale(ctx, key, ep, a, rerun[key]) })
	}
	w.lanes.wait()
}

// leftSince reads the log for the endpoints of stale that the driver
// recorded a leave (or delete) of since their attribution. readable is
// false when the log could not be read: then their attributions are kept
// for the next reconciliation, rather than write an endpoint.stale that
// may be false or forget one that is due.
func (w *Watcher) leftSince(stale map[string]attribution) (left map[string]bool, readable bool) {
	var since time.Time
	owners := 0
	for _, a := range stale {
		if a.Via == "" && (owners == 0 || a.At.Before(since)) {
			since = a.At
		}
		if a.Via == "" {
			owners++
		}
	}
	left = map[string]bool{}
	if owners == 0 {
		return left, true
	}
	err := audit.Replay(w.cfg.Audit.Path(), since, []audit.Event{audit.EndpointLeave, audit.EndpointDelete}, func(r audit.Record) error {
		if r.Host == w.cfg.Host && r.Outcome == audit.OK {
			left[r.EndpointID] = true
		}
		return nil
	})
	if err != nil {
		w.cfg.Log.WithError(err).Error("watcher: cannot read the audit log for the leaves of the endpoints whose container stopped unseen; keeping them until the next reconciliation")
		return nil, false
	}
	return left, true
}

// endpointOf is the endpoint ID of an attribution key (attributionKey).
func endpointOf(key string) string {
	if _, ep, ok := strings.Cut(key, "@"); ok {
		return ep
	}
	return key
}

// rerunSlack is how much later than an attribution its container's run
// may have started and still be the run attributed: the watcher may
// attribute an endpoint at Docker's connect, a moment before the process
// starts.
const rerunSlack = time.Minute

// endpointStale writes the endpoint.stale of endpoint ep, attributed to
// a's container, and then forgets the attribution. rerunAt, when not zero,
// is the start of the container's current run, which holds other
// endpoints: ep's use ended at or before it.
func (w *Watcher) endpointStale(ctx context.Context, key, ep string, a attribution, rerunAt time.Time) {
	detail := staleDetail
	if !rerunAt.IsZero() {
		detail = rerunDetail
	}
	rec := w.record(audit.EndpointStale, a.Container, true, detail)
	rec.EndpointID, rec.NetworkName, rec.Swarm = ep, a.NetworkName, a.Swarm
	rec.Container.Name = a.Name
	var end time.Time
	c, err := w.inspect(ctx, a.Container)
	if err == nil {
		rec.Container.Name, rec.Container.Image = c.Name, c.Image
		if sw := swarmtask.FromLabels(c.Labels); sw != nil {
			rec.Swarm = sw
		}
		if !c.StartedAt.IsZero() {
			start := c.StartedAt
			rec.Container.StartedAt = &start
		}
	}
	if rerunAt.IsZero() && err == nil && !c.Running && !a.At.IsZero() && c.StartedAt.After(a.At.Add(rerunSlack)) {
		// Stopped, but it ran again after the attribution (restarted and
		// stopped while the watcher was away): its FinishedAt is of that
		// later run, which did not hold ep.
		rerunAt = c.StartedAt
		rec.Detail = strings.Replace(rerunDetail, "its container runs again", "its container ran again since, and stopped since,", 1)
	}
	if !rerunAt.IsZero() {
		end = rerunAt
		rec.Container.StartedAt = nil // the later run's start is not the start of the run that held ep
	} else if err == nil && !c.Running && !c.FinishedAt.IsZero() && !c.FinishedAt.Before(c.StartedAt) {
		end = c.FinishedAt
	} else if !a.At.IsZero() {
		dctx, cancel := context.WithTimeout(ctx, w.callTimeout)
		end, _ = w.cfg.Engine.Died(dctx, a.Container, a.At) // the die of the run attributed then
		cancel()
	}
	if !end.IsZero() {
		rec.EndedAt = &end
	} else {
		rec.Detail += "; Docker no longer says when the container stopped: the end of the endpoint's use is unknown"
	}
	if rec.NetworkName == "" {
		if n, err := w.network(ctx, a.Network); err == nil {
			rec.NetworkName = n.Name
		}
	}
	_ = w.write(ctx, rec, a.Network, func() { delete(w.state.Attributed, key) })
}

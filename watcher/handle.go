package watcher

import (
	"context"
	"fmt"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// handle applies one event. late marks events found by reconciling rather
// than from the stream. Duplicates (a replay after a reconnect, a die after a
// disconnect) write nothing twice; a disconnect that arrives before its
// connect is held until the connect comes.
func (w *Watcher) handle(ctx context.Context, e Event, late bool) {
	host := e.Type == "network" && (e.NetworkType == "host" || e.NetworkName == "host")
	_, hostpass := w.cfg.Known(e.NetworkID)
	switch {
	case host && e.Action == "connect":
		c, err := w.inspect(ctx, e.ContainerID)
		w.hostJoin(e.ContainerID, c, err, e.Time, late)
	case host && e.Action == "disconnect":
		w.hostLeave(e.ContainerID, e.Time, late, "")
	case e.Type == "container" && e.Action == "start":
		if s, ok := w.state.Sessions[e.ContainerID]; ok && s.Provisional {
			if c, err := w.inspect(ctx, e.ContainerID); err == nil && c.Running {
				s.Start, s.Provisional = c.StartedAt, false
				w.state.Sessions[e.ContainerID] = s
			}
		}
	case e.Type == "container" && e.Action == "die":
		// Only a container in host mode has a session to end; the die of
		// any other container is no early disconnect to hold.
		if s, ok := w.state.Sessions[e.ContainerID]; ok {
			if s.Name == "" {
				s.Name, s.Image = e.Name, e.Image
				w.state.Sessions[e.ContainerID] = s
			}
			w.hostLeave(e.ContainerID, e.Time, late, "")
		}
	case e.Type == "network" && e.Action == "connect" && hostpass:
		if c, err := w.inspect(ctx, e.ContainerID); err != nil {
			w.write(w.record(audit.EndpointAttribute, e.ContainerID, late, fmt.Sprintf("the container could not be inspected: %v", err)), e.NetworkID)
		} else {
			w.attribute(ctx, c, e.NetworkID, late, e.Time)
		}
	case e.Type == "network" && e.Action == "disconnect" && hostpass:
		for ep, a := range w.state.Attributed {
			if a.Container == e.ContainerID && a.Network == e.NetworkID {
				delete(w.state.Attributed, ep)
			}
		}
	}
	if e.Time.After(w.state.Since) {
		w.state.Since = e.Time
	}
	w.save()
}

// hostJoin records that a container got --network host. c is the container
// as inspected, or err says why it could not be.
func (w *Watcher) hostJoin(id string, c Container, err error, at time.Time, late bool) {
	start, provisional := at, true
	if err == nil && c.Running && !c.StartedAt.IsZero() {
		start, provisional = c.StartedAt, false
	}
	if s, open := w.state.Sessions[id]; open {
		if s.Start.Equal(start) || (s.Provisional && provisional) {
			return // already recorded
		}
		if !s.Provisional {
			w.hostLeave(id, start, true, "the container restarted while hostpass was not watching")
		}
	}
	if _, open := w.state.Sessions[id]; !open {
		rec := w.record(audit.HostJoin, id, late, "")
		if err != nil {
			rec.Detail = fmt.Sprintf("the container was gone before it could be inspected: %v", err)
		} else {
			rec.Container = withStart(c, at)
		}
		rec.View = w.cfg.HostInterfaces() // the log records it as host.view, named in host_view
		w.write(rec, "")
	}
	w.state.Sessions[id] = session{Start: start, Provisional: provisional, Name: c.Name, Image: c.Image}
	if left, ok := w.state.early[id]; ok {
		delete(w.state.early, id)
		if !left.Before(at) {
			w.hostLeave(id, left, late, "")
		}
	}
}

// hostLeave records that a container's host-mode session ended, with how
// long it lasted.
func (w *Watcher) hostLeave(id string, at time.Time, late bool, detail string) {
	s, open := w.state.Sessions[id]
	if !open {
		w.holdEarly(id, at)
		return
	}
	delete(w.state.Sessions, id)
	rec := w.record(audit.HostLeave, id, late, detail)
	rec.Container.Name, rec.Container.Image, rec.Container.StartedAt = s.Name, s.Image, &s.Start
	secs := at.Sub(s.Start).Seconds()
	if secs < 0 {
		secs = 0
	}
	rec.HostModeSeconds = &secs
	w.write(rec, "")
}

// earlyHold bounds how long a disconnect waits for its connect: events out
// of order are seconds apart, not minutes.
const earlyHold = 10 * time.Minute

// holdEarly keeps a disconnect that came before its connect, and forgets
// those held too long, so the map cannot grow without end.
func (w *Watcher) holdEarly(id string, at time.Time) {
	for other, t := range w.state.early {
		if at.Sub(t) > earlyHold {
			delete(w.state.early, other)
		}
	}
	w.state.early[id] = at
}

// attribute links the container's endpoint on a hostpass network to the
// container, and applies the policy.
func (w *Watcher) attribute(ctx context.Context, c Container, networkID string, late bool, at time.Time) {
	ep := c.Endpoints[networkID]
	if a, ok := w.state.Attributed[ep]; ok && ep != "" && a.Container == c.ID {
		return // already recorded
	}
	rec := w.record(audit.EndpointAttribute, c.ID, late, "")
	rec.Container, rec.EndpointID = withStart(c, at), ep
	if n, err := w.network(ctx, networkID); err == nil {
		rec.NetworkName, rec.NetworkLabels = n.Name, n.Labels
	}
	w.write(rec, networkID)
	if ep != "" {
		w.state.Attributed[ep] = attribution{Container: c.ID, Network: networkID}
	}
	if w.cfg.Policy.Allows(c) {
		return
	}
	v := w.record(audit.PolicyViolation, c.ID, late, "")
	v.Container, v.EndpointID, v.NetworkName = rec.Container, ep, rec.NetworkName
	v.Policy, v.Action = w.cfg.Policy.String(), "recorded"
	if w.cfg.StopViolators {
		v.Action = "stopped"
		sctx, cancel := context.WithTimeout(ctx, callTimeout+5*time.Second)
		if err := w.cfg.Engine.Stop(sctx, c.ID); err != nil {
			v.Action, v.Outcome, v.Error = "stop failed", audit.Refused, err.Error()
		}
		cancel()
	}
	w.write(v, networkID)
}

// reconcile compares the running containers with what the watcher has
// recorded: host-mode containers and hostpass endpoints it has no record of
// are recorded now, marked observed_late, and sessions whose container is
// gone are closed.
func (w *Watcher) reconcile(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, callTimeout)
	ids, err := w.cfg.Engine.Running(lctx)
	cancel()
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, id := range ids {
		running[id] = true
		c, err := w.inspect(ctx, id)
		if err != nil {
			continue // gone meanwhile: its die event follows
		}
		if c.NetworkMode == "host" {
			s, open := w.state.Sessions[id]
			switch {
			case open && s.Provisional:
				s.Start, s.Provisional = c.StartedAt, false // its start event was missed
				w.state.Sessions[id] = s
			case !open || !s.Start.Equal(c.StartedAt):
				w.hostJoin(id, c, nil, c.StartedAt, true)
			}
		}
		for netID, ep := range c.Endpoints {
			if _, ok := w.cfg.Known(netID); ok {
				if _, done := w.state.Attributed[ep]; !done {
					w.attribute(ctx, c, netID, true, c.StartedAt)
				}
			}
		}
	}
	for ep, a := range w.state.Attributed {
		if !running[a.Container] {
			delete(w.state.Attributed, ep) // its disconnect was missed
		}
	}
	for id := range w.state.Sessions {
		if !running[id] {
			end := time.Now().UTC()
			if c, err := w.inspect(ctx, id); err == nil && !c.FinishedAt.IsZero() {
				end = c.FinishedAt
			}
			w.hostLeave(id, end, true, "the container stopped while hostpass was not watching")
		}
	}
	w.save()
	return nil
}

// withStart returns the container's audit facts with its start time: the
// current run's when it is running, else at, the connect event's time
// (Docker connects networks just before the process starts, when inspect
// still shows the previous run's).
func withStart(c Container, at time.Time) *audit.Container {
	ac := c.Container
	start := at
	if c.Running && !c.StartedAt.IsZero() {
		start = c.StartedAt
	}
	ac.StartedAt = &start
	return &ac
}

func (w *Watcher) inspect(ctx context.Context, id string) (Container, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return w.cfg.Engine.Container(ctx, id)
}

func (w *Watcher) network(ctx context.Context, id string) (Network, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return w.cfg.Engine.Network(ctx, id)
}

func (w *Watcher) record(event, containerID string, late bool, detail string) audit.Record {
	return audit.Record{
		Time: time.Now().UTC(), Event: event, Outcome: audit.OK, Host: w.cfg.Host, Driver: w.cfg.Driver,
		Container: &audit.Container{ID: containerID}, ObservedLate: late, Detail: detail,
	}
}

// write appends rec; the log keeps it in memory if it cannot be written now.
func (w *Watcher) write(rec audit.Record, networkID string) {
	if networkID != "" {
		rec.NetworkID = networkID
		rec.Tag, _ = w.cfg.Known(networkID)
	}
	if err := w.cfg.Audit.AppendOrKeep(rec); err != nil {
		w.cfg.Log.WithError(err).WithField("event", rec.Event).Error("watcher: record kept in memory until the audit log is writable")
	}
}

func (w *Watcher) save() {
	if err := w.state.save(); err != nil {
		w.cfg.Log.WithError(err).Error("watcher: cannot save its state; a restart may record some events twice")
	}
}

package watcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/swarmtask"
)

// handle applies one event, in its container's lane. Duplicates (a replay
// after a reconnect, a die after a disconnect) write nothing twice; a
// disconnect that arrives before its connect is held until the connect
// comes. It returns nil once every record the event calls for is durable,
// and an error only when ctx ended first: then the state does not show the
// event, and a replay or a reconciliation brings it again.
func (w *Watcher) handle(ctx context.Context, e Event) error {
	host := e.Type == "network" && (e.NetworkType == "host" || e.NetworkName == "host")
	hostpass := false
	if e.Type == "network" && !host {
		_, _, _, hostpass = w.cfg.Known(e.NetworkID)
	}
	if e.Type == "network" {
		w.noteOwnNamespace(e.ContainerID, e.Action == "connect")
	}
	switch {
	case host && e.Action == "connect":
		c, err := w.inspect(ctx, e.ContainerID)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return w.hostJoin(ctx, e.ContainerID, c, err, e.Time, false, nil)
	case host && e.Action == "disconnect":
		if w.takeClosed(e.ContainerID) {
			return nil // its die ended the session
		}
		return w.hostLeave(ctx, e.ContainerID, e.Time, false, "")
	case e.Type == "container" && e.Action == "start":
		return w.started(ctx, e)
	case e.Type == "container" && e.Action == "die":
		w.noteOwnNamespace(e.ContainerID, false)
		// No disconnect comes for a container in another's namespace.
		w.forget(func(a attribution) bool { return a.Via != "" && a.Container == e.ContainerID })
		w.dropSharer(e.ContainerID)
		// Only a container in host mode has a session to end; the die of
		// any other container is no early disconnect to hold.
		s, ok := w.session(e.ContainerID)
		if !ok {
			return nil
		}
		if s.Name == "" {
			s.Name, s.Image = e.Name, e.Image
			w.setSession(e.ContainerID, s)
		}
		if err := w.hostLeave(ctx, e.ContainerID, e.Time, false, ""); err != nil {
			return err
		}
		if s.Via == nil { // in the host's namespace through another: no disconnect comes
			w.noteClosed(e.ContainerID, e.Time)
		}
		return nil
	case e.Type == "network" && e.Action == "connect" && hostpass:
		c, err := w.inspect(ctx, e.ContainerID)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return w.write(ctx, w.record(audit.EndpointAttribute, e.ContainerID, false, fmt.Sprintf("the container could not be inspected: %v", err)), e.NetworkID, nil)
		}
		if err := w.attribute(ctx, c, e.NetworkID, c.Endpoints[e.NetworkID], nil, false, e.Time); err != nil {
			return err
		}
		// The containers in its namespace are on the network too, and
		// Docker sends no event for them.
		w.placeSharers(ctx, e.ContainerID, e.Time)
		return nil
	case e.Type == "network" && e.Action == "disconnect" && hostpass:
		// The container, and those in its namespace, leave the network.
		w.forget(func(a attribution) bool {
			return a.Network == e.NetworkID && (a.Container == e.ContainerID || a.Via == e.ContainerID)
		})
	}
	return nil
}

// started handles a container's start: it fixes the start of a host-mode
// session opened at connect, and places a container that shares another's
// namespace (--network container:X), for which Docker sends no network
// event.
//
// A container whose network connect came before its start has a namespace
// of its own: unless its host-mode session waits for its start time, its
// start calls for no inspect. On Docker 29 that inspect took the
// container's lock while the container ran and exited, beside the
// connect's own inspect: the window in which `docker run` was measured
// slower with the watcher on.
func (w *Watcher) started(ctx context.Context, e Event) error {
	s, open := w.session(e.ContainerID)
	if w.takeOwnNamespace(e.ContainerID) && (!open || !s.Provisional) {
		return nil
	}
	c, err := w.inspect(ctx, e.ContainerID)
	if errors.Is(err, errNoAnswer) || errors.Is(err, ErrUnreadable) {
		return w.unplaced(ctx, Container{Container: audit.Container{ID: e.ContainerID, Name: e.Name, Image: e.Image}}, nil, false, err.Error())
	}
	if err != nil {
		return ctx.Err() // gone already: its die follows
	}
	if open && s.Provisional {
		if c.Running {
			s.Start, s.Provisional = c.StartedAt, false
			w.setSession(e.ContainerID, s)
		}
		return nil
	}
	if c.sharesWith() == "" {
		return nil
	}
	w.noteSharer(c)
	return w.place(ctx, c, e.Time, false)
}

// hostJoin records that a container got --network host, or the host's
// namespace through via. c is the container as inspected, or err says why it
// could not be.
func (w *Watcher) hostJoin(ctx context.Context, id string, c Container, err error, at time.Time, late bool, via *audit.ContainerRef) error {
	start, provisional := at, true
	if err == nil && c.Running && !c.StartedAt.IsZero() {
		start, provisional = c.StartedAt, false
	}
	s, open := w.session(id)
	if open && (s.Start.Equal(start) || s.Provisional && provisional) {
		return nil // already recorded
	}
	if open && !s.Provisional {
		if err := w.hostLeave(ctx, id, start, true, "the container restarted while hostpass was not watching"); err != nil {
			return err
		}
		open = false
	}
	sess := session{Start: start, Provisional: provisional, Name: c.Name, Image: c.Image, Via: via, Swarm: swarmtask.FromLabels(c.Labels)}
	if open {
		w.setSession(id, sess)
	} else {
		rec := w.record(audit.HostJoin, id, late, "")
		switch {
		case errors.Is(err, ErrNoSuchContainer):
			rec.Detail = fmt.Sprintf("the container was gone before it could be inspected: %v", err)
		case err != nil:
			rec.Detail = fmt.Sprintf("the container could not be inspected: %v", err)
		default:
			rec.Container = withStart(c, at)
		}
		rec.Via, rec.Swarm = via, sess.Swarm
		rec.View = w.cfg.HostInterfaces() // the log records it as host.view, named in host_view
		if err := w.write(ctx, rec, "", func() { w.state.Sessions[id] = sess }); err != nil {
			return err
		}
	}
	if left, ok := w.takeEarly(id); ok && !left.Before(at) {
		return w.hostLeave(ctx, id, left, late, "")
	}
	return nil
}

// hostLeave records that a container's host-mode session ended at at, with
// how long it lasted; a zero at says when it ended is unknown (detail says
// why), and the record carries no duration.
func (w *Watcher) hostLeave(ctx context.Context, id string, at time.Time, late bool, detail string) error {
	s, open := w.session(id)
	if !open {
		w.holdEarly(id, at)
		return nil
	}
	rec := w.record(audit.HostLeave, id, late, detail)
	rec.Container.Name, rec.Container.Image, rec.Container.StartedAt = s.Name, s.Image, &s.Start
	rec.Via, rec.Swarm = s.Via, s.Swarm
	if !at.IsZero() {
		secs := max(at.Sub(s.Start).Seconds(), 0)
		rec.HostModeSeconds = &secs
	}
	return w.write(ctx, rec, "", func() { delete(w.state.Sessions, id) })
}

// attribute links endpoint ep on a hostpass network to container c (through
// via, when c shares via's namespace and via owns ep), and applies the
// policy to c.
func (w *Watcher) attribute(ctx context.Context, c Container, networkID, ep string, via *audit.ContainerRef, late bool, at time.Time) error {
	key := attributionKey(c.ID, ep, via)
	if a, ok := w.attributed(key); ok && ep != "" && a.Container == c.ID {
		return nil // already recorded
	}
	rec := w.record(audit.EndpointAttribute, c.ID, late, "")
	rec.Container, rec.EndpointID, rec.Via, rec.Swarm = withStart(c, at), ep, via, swarmtask.FromLabels(c.Labels)
	if n, err := w.network(ctx, networkID); err == nil {
		rec.NetworkName, rec.NetworkLabels = n.Name, n.Labels
	}
	var v *audit.Record
	if !w.cfg.Policy.Allows(c) {
		r := w.record(audit.PolicyViolation, c.ID, late, "")
		r.Container, r.EndpointID, r.NetworkName, r.Via, r.Swarm = rec.Container, ep, rec.NetworkName, via, rec.Swarm
		r.Policy, r.Action = w.cfg.Policy.String(), audit.ActionRecorded
		if w.cfg.StopViolators {
			// Before the records: a stop must not wait on the audit log.
			r.Action = audit.ActionStopped
			sctx, cancel := context.WithTimeout(ctx, w.callTimeout+5*time.Second)
			if err := w.cfg.Engine.Stop(sctx, c.ID); err != nil {
				r.Action, r.Outcome, r.Error = audit.ActionStopFailed, audit.Refused, err.Error()
			} else if r.Swarm != nil {
				r.Detail = swarmStopped(r.Swarm)
			}
			cancel()
		}
		v = &r
	}
	a := attribution{Container: c.ID, Network: networkID, Name: c.Name, NetworkName: rec.NetworkName, Swarm: rec.Swarm}
	if via != nil {
		a.Via = via.ID
	}
	// Attributed once every record is durable (replay.go reads an
	// endpoint.attribute the policy refuses as done only with its
	// policy.violation).
	done := func() {
		if ep != "" {
			a.At = rec.Time
			w.state.Attributed[key] = a
		}
	}
	if v == nil {
		return w.write(ctx, rec, networkID, done)
	}
	if err := w.write(ctx, rec, networkID, nil); err != nil {
		return err
	}
	return w.write(ctx, *v, networkID, done)
}

// swarmStopped tells the reader of a stopped swarm task's violation what
// follows, which hostpass does not decide. A task's container carries no
// restart policy (swarm's agent restarts tasks, not Docker), so the detail
// says what follows only if the service's policy restarts it, gives swarm's
// default (swarmkit api/defaults: any exit, 5 s, no limit) and how to end
// the loop. It names the service only as swarmtask accepted it (swarm's
// name characters), so no label's text reaches it unchecked.
func swarmStopped(t *audit.SwarmTask) string {
	if t.ServiceName == "" {
		return "" // labels that name no service: nothing to tell
	}
	place := "its place" // a task name swarm did not write: neither is known
	switch {
	case t.Slot > 0:
		place = "the same slot"
	case t.TaskName == t.ServiceName+"."+t.NodeID+"."+t.TaskID:
		place = "the same node" // a global service's task
	}
	return fmt.Sprintf("a swarm task: swarm, not hostpass, decides what follows; if the service's restart policy restarts it "+
		"(swarm's default: after any exit, in 5 s, without limit), a new task takes %s, and this policy will stop it too; "+
		"end the loop by fixing the service or the policy, or with docker service update --restart-condition none (or --restart-max-attempts N) %s",
		place, t.ServiceName)
}

// attributionKey: an endpoint is its owner's; a container in the owner's
// namespace has an attribution of its own to the same endpoint.
func attributionKey(container, ep string, via *audit.ContainerRef) string {
	if via == nil {
		return ep
	}
	return container + "@" + ep
}

// errNoAnswer: Docker did not answer inspectTries inspects of a container.
var errNoAnswer = errors.New("Docker did not answer")

// inspect asks Docker about a container. An error other than "no such
// container" or an unreadable answer (Docker restarting, a timeout under
// load) is retried: the container's lane waits, rather than record a live
// container as gone. It fails with ErrNoSuchContainer, with ErrUnreadable
// (asking again would bring the same answer), when ctx ends, or with
// errNoAnswer after inspectTries tries: one hung inspect must not hold since
// back for ever.
func (w *Watcher) inspect(ctx context.Context, id string) (Container, error) {
	wait := minBackoff
	for try := 1; ; try++ {
		ictx, cancel := context.WithTimeout(ctx, w.callTimeout)
		c, err := w.cfg.Engine.Container(ictx, id)
		cancel()
		if err == nil || errors.Is(err, ErrNoSuchContainer) || ctx.Err() != nil {
			return c, err
		}
		if errors.Is(err, ErrUnreadable) {
			w.cfg.Log.WithError(err).WithField("container", id).Error("watcher: Docker's inspect of the container cannot be read; recording it without what the inspect would say")
			return Container{}, err
		}
		if try == w.inspectTries {
			w.cfg.Log.WithError(err).WithField("container", id).Error("watcher: Docker did not answer the inspects of the container; giving up on it")
			return Container{}, fmt.Errorf("%w %d inspects of container %s (each within %v): %w", errNoAnswer, try, id, w.callTimeout, err)
		}
		if wait == minBackoff {
			w.cfg.Log.WithError(err).WithField("container", id).Warn("watcher: cannot inspect the container; retrying")
		}
		select {
		case <-ctx.Done():
			return Container{}, ctx.Err()
		case <-time.After(wait):
		}
		if wait *= 2; wait > retryWrite {
			wait = retryWrite
		}
	}
}

// network asks Docker about a hostpass network once: its name and labels
// never change (Docker renames no network and takes no labels after
// create), and a network inspect per container would call Docker while the
// container starts. Answers are kept for the networks the driver knows.
func (w *Watcher) network(ctx context.Context, id string) (Network, error) {
	w.mu.Lock()
	n, ok := w.networks[id]
	w.mu.Unlock()
	if ok {
		return n, nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.callTimeout)
	defer cancel()
	n, err := w.cfg.Engine.Network(ctx, id)
	if err != nil {
		return n, err
	}
	// Known asks the driver: not under w.mu.
	known := func(id string) bool { _, _, _, ok := w.cfg.Known(id); return ok }
	w.mu.Lock()
	kept := make([]string, 0, len(w.networks))
	for k := range w.networks {
		kept = append(kept, k)
	}
	w.mu.Unlock()
	var removed []string
	for _, k := range kept {
		if !known(k) {
			removed = append(removed, k)
		}
	}
	keep := known(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range removed {
		delete(w.networks, k)
	}
	if keep {
		w.networks[id] = n
	}
	return n, nil
}

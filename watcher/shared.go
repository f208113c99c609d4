package watcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// A container started with --network container:X has no network of its
// own: it lives in X's namespace. Docker sends no network event for it, only
// start and die, and inspect shows NetworkMode "container:<X's ID>" and no
// networks. X may itself share another's namespace.

// maxShareDepth bounds how far place follows container:X to the namespace's
// owner.
const maxShareDepth = 8

// sharesWith is the ID (or name) of the container whose namespace c shares,
// or "".
func (c Container) sharesWith() string {
	x, _ := strings.CutPrefix(c.NetworkMode, "container:")
	if x == c.NetworkMode {
		return ""
	}
	return x
}

// owner returns the container that owns c's network namespace (c itself
// unless it shares another's) and, when it shares, via naming the container
// it named (X). err says why the owner cannot be found (a container on the
// way is gone, or Docker does not answer): missing names that container.
func (w *Watcher) owner(ctx context.Context, c Container) (owner Container, via, missing *audit.ContainerRef, err error) {
	owner = c
	for depth := 0; owner.sharesWith() != ""; depth++ {
		x := owner.sharesWith()
		if depth == maxShareDepth {
			return Container{}, via, &audit.ContainerRef{ID: x}, fmt.Errorf("the container is more than %d --network container: steps away from the owner of its network namespace", maxShareDepth)
		}
		xc, err := w.inspect(ctx, x)
		if err != nil {
			why := "which Docker no longer knows (removed)"
			if !errors.Is(err, ErrNoSuchContainer) {
				why = fmt.Sprintf("which could not be inspected (%v)", err)
			}
			return Container{}, via, &audit.ContainerRef{ID: x}, fmt.Errorf("the container shares the network namespace of container %s, %s: hostpass cannot tell whether that namespace is the host's or on a hostpass network", x, why)
		}
		if via == nil {
			via = &audit.ContainerRef{ID: xc.ID, Name: xc.Name}
		}
		owner = xc
	}
	return owner, via, nil, nil
}

// place records container c where its namespace is: in the host's (a
// host.join) when its owner is in host mode, on its owner's hostpass
// endpoints (an endpoint.attribute each) otherwise. When the owner cannot
// be found it records that (container.unplaced), never nothing. Records
// already written are not written again.
func (w *Watcher) place(ctx context.Context, c Container, at time.Time, late bool) error {
	owner, via, missing, err := w.owner(ctx, c)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		w.cfg.Log.WithError(err).WithField("container", c.ID).Warn("watcher: cannot place the container; recording that")
		return w.unplaced(ctx, c, missing, late, err.Error())
	}
	if owner.NetworkMode == "host" {
		s, open := w.session(c.ID)
		switch {
		case open && s.Provisional:
			s.Start, s.Provisional = c.StartedAt, false // its start event was missed
			w.setSession(c.ID, s)
		case !open || !s.Start.Equal(c.StartedAt):
			if err := w.hostJoin(ctx, c.ID, c, nil, c.StartedAt, late, via); err != nil {
				return err
			}
		}
	}
	for netID, ep := range owner.Endpoints {
		if _, _, _, known := w.cfg.Known(netID); !known {
			continue
		}
		if _, done := w.attributed(attributionKey(c.ID, ep, via)); done {
			continue
		}
		if err := w.attribute(ctx, c, netID, ep, via, late, at); err != nil {
			return err
		}
	}
	return nil
}

// unplaced records, once per run of the container, that hostpass cannot
// tell where c's network namespace is; via names the container in the way.
func (w *Watcher) unplaced(ctx context.Context, c Container, via *audit.ContainerRef, late bool, detail string) error {
	w.mu.Lock()
	done := w.state.Unplaced[c.ID]
	w.mu.Unlock()
	if done {
		return nil
	}
	rec := w.record(audit.ContainerUnplaced, c.ID, late, detail)
	ac := c.Container
	if c.Running && !c.StartedAt.IsZero() {
		ac.StartedAt = &c.StartedAt
	}
	rec.Container, rec.Via = &ac, via
	return w.write(ctx, rec, "", func() { w.state.Unplaced[c.ID] = true })
}

// noteSharer indexes c, which shares another's namespace, under the
// container it names: when that one connects to a hostpass network, Docker
// sends an event for it alone.
func (w *Watcher) noteSharer(c Container) {
	x := c.sharesWith()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sharers[x] == nil {
		w.sharers[x] = map[string]bool{}
	}
	w.sharers[x][c.ID] = true
}

// dropSharer forgets a container that died, as a sharer and as an owner
// with unplaced records.
func (w *Watcher) dropSharer(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.state.Unplaced, id)
	for x, set := range w.sharers {
		if delete(set, id); len(set) == 0 {
			delete(w.sharers, x)
		}
	}
}

// placeSharers places, each in its own lane, the running containers in x's
// namespace (directly or through others), after x joined a hostpass network.
func (w *Watcher) placeSharers(ctx context.Context, x string, at time.Time) {
	w.mu.Lock()
	var ids []string
	next := []string{x}
	for depth := 0; depth < maxShareDepth && len(next) > 0; depth++ {
		var found []string
		for _, o := range next {
			for id := range w.sharers[o] {
				found = append(found, id)
			}
		}
		ids, next = append(ids, found...), found
	}
	w.mu.Unlock()
	for _, id := range ids {
		w.lanes.add(id, func() {
			c, err := w.inspect(ctx, id)
			if err != nil || !c.Running {
				return // gone: nothing to place
			}
			w.place(ctx, c, at, false)
		})
	}
}

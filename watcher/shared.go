package watcher

import (
	"context"
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
// it named (X). ok is false when the owner cannot be inspected (gone).
func (w *Watcher) owner(ctx context.Context, c Container) (owner Container, via *audit.ContainerRef, ok bool) {
	owner = c
	for depth := 0; owner.sharesWith() != "" && depth < maxShareDepth; depth++ {
		x, err := w.inspect(ctx, owner.sharesWith())
		if err != nil {
			w.cfg.Log.WithError(err).WithField("container", c.ID).
				Warn("watcher: cannot inspect the container whose network namespace this one shares; it is not recorded")
			return Container{}, nil, false
		}
		if via == nil {
			via = &audit.ContainerRef{ID: x.ID, Name: x.Name}
		}
		owner = x
	}
	return owner, via, owner.sharesWith() == ""
}

// place records container c where its namespace is: in the host's (a
// host.join) when its owner is in host mode, on its owner's hostpass
// endpoints (an endpoint.attribute each) otherwise. Records already written
// are not written again.
func (w *Watcher) place(ctx context.Context, c Container, at time.Time, late bool) error {
	owner, via, ok := w.owner(ctx, c)
	if !ok {
		return ctx.Err()
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

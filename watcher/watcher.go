// Package watcher closes the two gaps the driver cannot: driver requests
// never name the container, and containers started with --network host
// never reach a plugin. It follows Docker's event stream beside the driver,
// never inside a driver call (calling Docker from a driver call can
// deadlock the daemon), and writes what it learns to the same audit log.
package watcher

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
)

// Config is what the daemon wires into the watcher.
type Config struct {
	Engine Engine
	Source string // where Engine talks to, for messages
	Audit  *audit.Log
	// Known says whether a network ID is a hostpass network (the driver's
	// state, so attribution needs no driver name), and its tag.
	Known          func(networkID string) (tag string, ok bool)
	HostInterfaces func() []audit.Interface
	Policy         Policy
	StopViolators  bool
	StateDir       string
	Host, Driver   string
	Log            *logrus.Entry
}

// Backoff between reconnects to Docker.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
	// callTimeout bounds each inspect or stop call.
	callTimeout = 10 * time.Second
)

// Watcher follows Docker's events. Only its run goroutine touches its state.
type Watcher struct {
	cfg   Config
	state *state
}

// New loads the watcher's saved state (open host-mode sessions, the last
// event seen).
func New(cfg Config) (*Watcher, error) {
	st, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &Watcher{cfg: cfg, state: st}, nil
}

// Run follows Docker until ctx ends: it subscribes, reconciles with the
// running containers, then handles events; when the stream breaks
// (dockerd restarts, or is not up yet) it reconnects with backoff and
// replays from the last event it saw.
func (w *Watcher) Run(ctx context.Context) {
	backoff := minBackoff
	said := false
	for ctx.Err() == nil {
		sub, cancel := context.WithCancel(ctx)
		events, errs := w.cfg.Engine.Events(sub, w.state.Since)
		err := w.reconcile(sub)
		if err == nil {
			if said {
				w.cfg.Log.Info("watcher: connected to Docker; events replayed and running containers reconciled")
			}
			said, backoff = false, minBackoff
			err = w.follow(sub, events, errs)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if !said {
			w.cfg.Log.WithError(err).WithField("docker", w.cfg.Source).
				Warn("watcher: Docker's API is unavailable: no container attribution or --network host auditing until it answers; retrying with backoff; the driver audits as usual")
			said = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > maxBackoff {
			backoff = maxBackoff
		}
	}
}

func (w *Watcher) follow(ctx context.Context, events <-chan Event, errs <-chan error) error {
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return errors.New("event stream closed")
			}
			w.handle(ctx, e, false)
		case err := <-errs:
			if err == nil {
				err = errors.New("event stream ended")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

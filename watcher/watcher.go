// Package watcher closes the two gaps the driver cannot: driver requests
// never name the container, and containers started with --network host
// never reach a plugin. It follows Docker's event stream beside the driver,
// never inside a driver call (calling Docker from a driver call can
// deadlock the daemon), and writes what it learns to the same audit log.
package watcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
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
	// state, so attribution needs no driver name), and what the records
	// say of it: its tag, whether it is --internal, whether it was adopted.
	Known          func(networkID string) (tag string, internal, adopted, ok bool)
	HostInterfaces func() []audit.Interface
	Policy         Policy
	StopViolators  bool
	StateDir       string
	Host, Driver   string
	Log            *logrus.Entry
	// Observer, if not nil, hears the host-mode count, reconnects and
	// each event's lag (observer.go).
	Observer Observer
}

const (
	// Backoff between reconnects to Docker, and between retries of a
	// record the audit log cannot take yet.
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
	// callTimeout bounds each inspect or stop call.
	callTimeout = 10 * time.Second
	// inspectTries bounds the inspects of one container that Docker does
	// not answer: past it the watcher records that it gave up, so that one
	// hung container cannot hold its lane, and since, for ever.
	inspectTries = 6
	// concurrency bounds the inspects and stops under way at once. Docker
	// answers an inspect in about a millisecond; a stop can take 15 s.
	concurrency = 16
	// maxBacklog bounds the events read and not yet durable in stream order
	// (a few hundred bytes each), handled or not: one slow event holds back
	// every event read after it. Past it (the audit log has been down for long, or Docker
	// is very slow) the watcher lets the stream go and reconciles instead.
	maxBacklog = 100000
	// saveEvery bounds how often the state file is rewritten and fsynced.
	saveEvery = 200 * time.Millisecond
)

// Watcher follows Docker's events.
type Watcher struct {
	cfg Config

	// mu guards state, inflight and the sharing index. Never held across a
	// Docker call or an audit write: those run in lanes, one at a time per
	// container, so a container's entries change only from its own lane (or
	// from reconcile, which runs alone).
	mu    sync.Mutex
	state *state
	// inflight counts, by time, the records being written whose effect is
	// not yet in state (record.go): auditSince never passes them.
	inflight map[time.Time]int
	// sharers: container ID → the running containers started with
	// --network container:<ID> (shared.go). Rebuilt by reconcile.
	sharers map[string]map[string]bool
	// ownNamespace: containers whose network connect came since their
	// last start, die or disconnect (handle.go's started). Rebuilt empty by
	// reconcile. networks: what Docker said of each hostpass network
	// (handle.go's network).
	ownNamespace map[string]bool
	networks     map[string]Network
	// replayed: the audit log's records after AuditSince are in state.
	replayed bool
	// subscribed: a subscription was followed before; the next one is a
	// reconnect. Only Run's goroutine touches it.
	subscribed bool
	// subscribedAt: when the current subscription was asked for. An event
	// Docker stamped before it is replayed history, not live: its lag
	// would be the daemon's downtime, which the gap seconds count already.
	// Only Run's goroutine touches it.
	subscribedAt time.Time
	// following: the watcher follows Docker's events, and no window in
	// which it did not is left unrecorded. gap: the window not recorded
	// yet, if any; gapFromSave: its from is the previous run's last save
	// while following, which its later records may move (gap.go).
	following   bool
	gap         openGap
	gapFromSave bool

	lanes    *lanes
	progress *progress
	dirty    chan struct{} // the state changed: the saver writes it soon
	// saveEvery: saveEvery, or 0 to write the state after each event
	// (the benchmark's baseline). The others are their constants; tests
	// lower them.
	saveEvery    time.Duration
	maxBacklog   int
	callTimeout  time.Duration
	inspectTries int
}

// New loads the watcher's saved state (open host-mode sessions, the last
// event seen).
func New(cfg Config) (*Watcher, error) {
	st, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	g, fromSave := gapAtStart(st)
	w := &Watcher{
		cfg: cfg, state: st, inflight: map[time.Time]int{}, sharers: map[string]map[string]bool{},
		ownNamespace: map[string]bool{}, networks: map[string]Network{},
		gap: g, gapFromSave: fromSave,
		lanes: newLanes(concurrency), progress: newProgress(st.Since), dirty: make(chan struct{}, 1),
		saveEvery: saveEvery, maxBacklog: maxBacklog, callTimeout: callTimeout, inspectTries: inspectTries,
	}
	// The containers the last run left in host mode are still counted: a
	// restart of the daemon does not end their sessions.
	w.mu.Lock()
	w.reportHostMode()
	w.mu.Unlock()
	return w, nil
}

// Run follows Docker until ctx ends: it subscribes, reconciles with the
// running containers, then handles events; when the stream breaks
// (dockerd restarts, or is not up yet) it reconnects with backoff and
// replays from the last event whose records are durable.
func (w *Watcher) Run(ctx context.Context) {
	saverCtx, stopSaver := context.WithCancel(context.Background())
	saved := make(chan struct{})
	go func() { w.saver(saverCtx); close(saved) }()
	defer func() { stopSaver(); <-saved; w.save() }()

	backoff := minBackoff
	said := false
	for ctx.Err() == nil {
		err := w.connect(ctx, said)
		if err == nil {
			said, backoff = false, minBackoff
			continue
		}
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

// connect follows one subscription until it breaks. It returns nil when it
// let the stream go on purpose (the backlog was full): reconnect at once.
func (w *Watcher) connect(ctx context.Context, said bool) error {
	sub, cancel := context.WithCancel(ctx)
	w.progress.reset()
	// No Docker call is in flight here: the last connect waited for its
	// reconcile and its lanes. Events relies on it to renegotiate the API
	// version.
	since := w.progress.Since()
	w.subscribedAt = time.Now()
	events, errs := w.cfg.Engine.Events(sub, since)
	reconciled, reconcileDone := make(chan error, 1), make(chan struct{})
	go func() { reconciled <- w.reconcile(sub); close(reconcileDone) }()
	held, err := w.follow(ctx, sub, events, errs, reconciled, said, since)
	if ctx.Err() == nil {
		w.stoppedFollowing(err)
	}
	if held != nil && <-reconciled == nil {
		// The stream ended before reconcile did; the events read are
		// handled all the same.
		for _, r := range held {
			w.dispatch(ctx, r.e, r.m)
		}
	}
	cancel()
	<-reconcileDone
	// Events read are handled even though the stream broke (Docker forgets
	// its event history when it restarts), before the next reconcile.
	w.lanes.wait()
	if errors.Is(err, errBehind) {
		w.cfg.Log.WithError(err).Warn("watcher: reconnecting to Docker and reconciling with the running containers")
		return nil
	}
	return err
}

var errBehind = errors.New("too many events wait to be handled")

// read is an event read from the stream, and its place in since.
type read struct {
	e Event
	m *mark
}

// follow reads the stream and never waits on the handling of an event:
// Docker drops a subscriber that falls 1024 events behind for 100 ms.
// Events read before reconcile is done are held, then handed on. They are
// handled under ctx, which outlives the subscription's sub.
//
// Once reconciled, the watcher follows again: the window in which it did not,
// if any, is recorded (gap.go). since is where the subscription replays from.
func (w *Watcher) follow(ctx, sub context.Context, events <-chan Event, errs <-chan error, reconciled <-chan error, said bool, since time.Time) (held []read, err error) {
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return held, errors.New("event stream closed")
			}
			// Marks count the events held and those handled behind one
			// that is not: all are kept until it is done.
			if n := max(w.lanes.pending(), w.progress.pending()); n >= w.maxBacklog {
				return held, fmt.Errorf("%w: %d events read and not durable in order (is the audit log writable? does Docker answer inspects?)", errBehind, n)
			}
			r := read{e, w.progress.read(e.Time)}
			if reconciled != nil {
				held = append(held, r)
				continue
			}
			w.dispatch(ctx, r.e, r.m)
		case err := <-reconciled:
			if err != nil {
				return nil, err
			}
			if said {
				w.cfg.Log.Info("watcher: connected to Docker; events replayed and running containers reconciled")
			}
			reconciled = nil
			if w.subscribed && w.cfg.Observer != nil {
				w.cfg.Observer.Reconnected()
			}
			w.subscribed = true
			w.resumedFollowing(ctx, since)
			for _, r := range held {
				w.dispatch(ctx, r.e, r.m)
			}
			held = nil
		case err := <-errs:
			if err == nil {
				err = errors.New("event stream ended")
			}
			return held, err
		case <-sub.Done():
			return held, sub.Err()
		}
	}
}

// dispatch hands e to its container's lane. It is done once its records are
// durable; if ctx ends first it stays undone, and a restart replays it.
func (w *Watcher) dispatch(ctx context.Context, e Event, m *mark) {
	if w.stale(e) {
		w.progress.done(m)
		return
	}
	live := !e.Time.Before(w.subscribedAt)
	w.lanes.add(e.ContainerID, func() {
		if ctx.Err() != nil {
			return
		}
		if err := w.handle(ctx, e); err != nil {
			return
		}
		if live && w.cfg.Observer != nil {
			w.cfg.Observer.WatcherLag(time.Since(e.Time))
		}
		w.progress.done(m)
		if w.saveEvery == 0 {
			w.save()
			return
		}
		w.changed()
	})
}

// stale reports whether e is older than what reconciliation established
// for its container: a replayed event of an earlier run, already accounted
// for. Both times are Docker's.
func (w *Watcher) stale(e Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	settled, ok := w.state.settled[e.ContainerID]
	return ok && e.Time.Before(settled)
}

// changed tells the saver the state changed.
func (w *Watcher) changed() {
	select {
	case w.dirty <- struct{}{}:
	default:
	}
}

// saver writes the state when it changed, at most once per saveEvery: an
// fsynced write per event would cap the event rate; and every followedEvery,
// so that the saved moment of following is never older than that (gap.go).
func (w *Watcher) saver(ctx context.Context) {
	tick := time.NewTicker(followedEvery)
	defer tick.Stop()
	for {
		select {
		case <-w.dirty:
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		w.save()
		select {
		case <-time.After(w.saveEvery):
		case <-ctx.Done():
			return
		}
	}
}

// save writes the state: open sessions and attributions whose records are
// durable, since, and auditSince: the time of the oldest record whose effect
// may be missing from the saved state (now, or the oldest in flight). After a
// crash, the records from auditSince on are read back from the log.
func (w *Watcher) save() {
	w.mu.Lock()
	w.state.Since = w.progress.Since()
	w.state.AuditSince = time.Now().UTC()
	// Following, now is a moment the watcher knows it followed; not
	// following, the open window's from is kept for the next start.
	w.state.Following = w.following
	if w.following {
		w.state.Followed = w.state.AuditSince
	} else if !w.gap.from.IsZero() {
		w.state.Followed = w.gap.from
	}
	for t := range w.inflight {
		if t.Before(w.state.AuditSince) {
			w.state.AuditSince = t
		}
	}
	b, err := json.Marshal(w.state)
	w.mu.Unlock()
	if err == nil {
		err = w.state.write(b)
	}
	if err != nil {
		w.cfg.Log.WithError(err).Error("watcher: cannot save its state; a restart may record some events twice")
	}
}

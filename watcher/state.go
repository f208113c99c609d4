package watcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hostpass/hostpass/atomicfile"
	"github.com/hostpass/hostpass/audit"
)

// stateFile keeps what the watcher must remember across restarts: where to
// replay Docker's events from (the newest event such that it and every
// event before it have durable records), which containers are in host mode
// since when, and which endpoints are attributed (so a replay writes
// nothing twice). Only what the audit log holds is saved.
const stateFile = "watcher.json"

type state struct {
	path string

	Since    time.Time          `json:"since"`
	Sessions map[string]session `json:"host_sessions"` // container ID → its open host-mode session
	// Attributed: endpoint ID → its container; "CONTAINER@ENDPOINT" for a
	// container in the namespace of the endpoint's owner.
	Attributed map[string]attribution `json:"attributed"`
	// AuditSince: the audit log's records from this time on may be missing
	// from the rest of the state (written after the last save, or in
	// flight then): at start they are read back (replay.go).
	AuditSince time.Time `json:"audit_since"`
	// Unplaced: running containers recorded as container.unplaced, so that
	// a reconnect does not record them again.
	Unplaced map[string]bool `json:"unplaced,omitempty"`
	// Following: the watcher was following Docker's events at this save,
	// and Followed is the save's time; else Followed is the start of the
	// window, not recorded yet, in which it was not (gap.go).
	Following bool      `json:"following,omitempty"`
	Followed  time.Time `json:"followed,omitempty"`

	// early holds disconnects seen before their connect (out of order);
	// not saved: a replay brings both again.
	early map[string]time.Time
	// closed holds sessions ended by a die, until the disconnect that
	// follows it, which then holds nothing. pruned is when both maps were
	// last pruned of entries older than earlyHold.
	closed map[string]time.Time
	pruned time.Time
	// settled holds, per container, the Docker time up to which the last
	// reconciliation established its state (the start of its current run,
	// or its end): its events from before then are stale replays.
	settled map[string]time.Time
}

type session struct {
	Start time.Time `json:"start"`
	// Provisional: Start is the connect event's time. Docker connects the
	// host network before the process starts, when inspect still shows the
	// previous run's start; the start event fixes it.
	Provisional bool   `json:"provisional,omitempty"`
	Name        string `json:"name,omitempty"`
	Image       string `json:"image,omitempty"`
	// Via: the container whose namespace it shares (--network container:X).
	Via *audit.ContainerRef `json:"via,omitempty"`
	// Swarm: the task's identity at host.join, for its host.leave.
	Swarm *audit.SwarmTask `json:"swarm,omitempty"`
}

type attribution struct {
	Container string `json:"container"`
	Network   string `json:"network"`
	// Via: the container that owns the endpoint, when Container shares its
	// namespace (--network container:X).
	Via string `json:"via,omitempty"`
	// At: when the endpoint.attribute was written; Name, NetworkName and
	// Swarm: what it said of the container, the network and the task. An
	// endpoint.stale needs them when Docker no longer has the container.
	At          time.Time        `json:"at,omitzero"`
	Name        string           `json:"name,omitempty"`
	NetworkName string           `json:"network_name,omitempty"`
	Swarm       *audit.SwarmTask `json:"swarm,omitempty"`
}

func loadState(dir string) (*state, error) {
	s := &state{path: filepath.Join(dir, stateFile), Sessions: map[string]session{}, Attributed: map[string]attribution{}, Unplaced: map[string]bool{}, early: map[string]time.Time{}, closed: map[string]time.Time{}, settled: map[string]time.Time{}}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("watcher state %s is not valid JSON (%w): fix it or move it away", s.path, err)
	}
	if s.Sessions == nil {
		s.Sessions = map[string]session{}
	}
	if s.Attributed == nil {
		s.Attributed = map[string]attribution{}
	}
	if s.Unplaced == nil {
		s.Unplaced = map[string]bool{}
	}
	return s, nil
}

// write replaces the state file atomically with b, a marshalled state.
func (s *state) write(b []byte) error { return atomicfile.Write(s.path, b) }

// The accessors below guard the state with w.mu, each for one short step.

func (w *Watcher) session(id string) (session, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.state.Sessions[id]
	return s, ok
}

func (w *Watcher) setSession(id string, s session) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state.Sessions[id] = s
}

func (w *Watcher) attributed(key string) (attribution, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.state.Attributed[key]
	return a, ok
}

// forget drops the attributions that gone selects.
func (w *Watcher) forget(gone func(attribution) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, a := range w.state.Attributed {
		if gone(a) {
			delete(w.state.Attributed, key)
		}
	}
}

// settle notes that reconciliation established id's state up to at.
func (w *Watcher) settle(id string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state.settled[id] = at
}

// earlyHold bounds how long a disconnect waits for its connect: events out
// of order are seconds apart, not minutes.
const earlyHold = 10 * time.Minute

// holdEarly keeps a disconnect that came before its connect.
func (w *Watcher) holdEarly(id string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prune(at)
	w.state.early[id] = at
}

// noteClosed notes that a die ended id's session: its disconnect follows.
func (w *Watcher) noteClosed(id string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prune(at)
	w.state.closed[id] = at
}

// takeClosed reports whether a die ended id's session, and forgets it.
func (w *Watcher) takeClosed(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.state.closed[id]
	delete(w.state.closed, id)
	return ok
}

// prune forgets disconnects and dies held longer than earlyHold, so the maps
// cannot grow without end; at most once a minute (of Docker's time), so
// that it costs nothing per event. Called with w.mu held.
func (w *Watcher) prune(at time.Time) {
	if at.Sub(w.state.pruned) < time.Minute {
		return
	}
	w.state.pruned = at
	for _, m := range []map[string]time.Time{w.state.early, w.state.closed} {
		for id, t := range m {
			if at.Sub(t) > earlyHold {
				delete(m, id)
			}
		}
	}
}

// takeEarly returns and forgets the disconnect held for id.
func (w *Watcher) takeEarly(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.state.early[id]
	delete(w.state.early, id)
	return at, ok
}

// noteOwnNamespace notes that container id has a network namespace of its
// own (a network connect came: Docker sends none for a container in
// another's), or forgets it (disconnect, die). started takes the note.
func (w *Watcher) noteOwnNamespace(id string, own bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if own {
		w.ownNamespace[id] = true
	} else {
		delete(w.ownNamespace, id)
	}
}

// takeOwnNamespace reports whether a network connect of id came since its
// last start, die or disconnect, and forgets it.
func (w *Watcher) takeOwnNamespace(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	own := w.ownNamespace[id]
	delete(w.ownNamespace, id)
	return own
}

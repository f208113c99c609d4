package watcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hostpass/hostpass/atomicfile"
)

// stateFile keeps what the watcher must remember across restarts: where to
// replay Docker's events from, which containers are in host mode since
// when, and which endpoints are attributed (so a replay writes nothing
// twice).
const stateFile = "watcher.json"

type state struct {
	path string

	Since      time.Time              `json:"since"`
	Sessions   map[string]session     `json:"host_sessions"` // container ID → its open host-mode session
	Attributed map[string]attribution `json:"attributed"`    // endpoint ID → its container

	// early holds disconnects seen before their connect (out of order);
	// not saved: a replay brings both again.
	early map[string]time.Time
}

type session struct {
	Start time.Time `json:"start"`
	// Provisional: Start is the connect event's time. Docker connects the
	// host network before the process starts, when inspect still shows the
	// previous run's start; the start event fixes it.
	Provisional bool   `json:"provisional,omitempty"`
	Name        string `json:"name,omitempty"`
	Image       string `json:"image,omitempty"`
}

type attribution struct {
	Container string `json:"container"`
	Network   string `json:"network"`
}

func loadState(dir string) (*state, error) {
	s := &state{path: filepath.Join(dir, stateFile), Sessions: map[string]session{}, Attributed: map[string]attribution{}, early: map[string]time.Time{}}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("watcher state %s is not valid JSON (%v): fix it or move it away", s.path, err)
	}
	if s.Sessions == nil {
		s.Sessions = map[string]session{}
	}
	if s.Attributed == nil {
		s.Attributed = map[string]attribution{}
	}
	return s, nil
}

// save replaces the state file atomically.
func (s *state) save() error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path, b)
}

package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/hostpass/hostpass/atomicfile"
)

// stateFile holds the known networks, so that joins keep working after the
// plugin or dockerd restarts (Docker never re-sends CreateNetwork).
const stateFile = "networks.json"

// adoptedFile lists the networks adopted since stateFile was last written,
// one JSON object a line. An adoption appends a line: it neither rewrites
// the state nor waits for an fsync, so a flood of unknown IDs costs one
// small append each. A line lost in a crash costs nothing but a second
// adoption at the network's next call (its records say adopted either
// way). The next full save folds the lines into stateFile.
const adoptedFile = "networks.adopted.jsonl"

type store struct {
	dir string
	mu  sync.Mutex // serialises save and adopt; held across the write on purpose
}

func newStore(dir string) *store { return &store{dir: dir} }

func (s *store) path() string        { return filepath.Join(s.dir, stateFile) }
func (s *store) adoptedPath() string { return filepath.Join(s.dir, adoptedFile) }

func (s *store) load() (map[string]Network, error) {
	networks := map[string]Network{}
	b, err := os.ReadFile(s.path())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading hostpass state: %w", err)
	}
	if err == nil {
		var list []Network
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("hostpass state %s is not valid JSON (%v): fix it or move it away; hostpass will not overwrite it", s.path(), err)
		}
		for _, n := range list {
			networks[n.ID] = n
		}
	}
	return networks, s.loadAdopted(networks)
}

// loadAdopted adds the adopted networks to networks. A partial last line (a
// crash during the append) is skipped; any other bad line stops the daemon,
// as a bad stateFile does.
func (s *store) loadAdopted(networks map[string]Network) error {
	b, err := os.ReadFile(s.adoptedPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading hostpass state: %w", err)
	}
	complete := b[:bytes.LastIndexByte(b, '\n')+1] // what follows was torn by a crash
	if len(complete) == 0 {
		return nil
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(complete, []byte("\n")), []byte("\n")) {
		var n Network
		if err := json.Unmarshal(line, &n); err != nil || n.ID == "" {
			return fmt.Errorf("hostpass state %s line %d is not an adopted network (%v): fix it or move it away; hostpass will not overwrite it", s.adoptedPath(), i+1, err)
		}
		if _, ok := networks[n.ID]; !ok {
			networks[n.ID] = n
		}
	}
	return nil
}

// save replaces the state file atomically: a crash leaves either the old
// state or the new, never half of one. It holds every network, adopted ones
// too, so the adoption lines are dropped first: a crash in between loses
// adoptions (they happen again), never brings a deleted network back.
func (s *store) save(networks []Network) error {
	sort.Slice(networks, func(i, j int) bool { return networks[i].ID < networks[j].ID })
	b, err := json.MarshalIndent(networks, "", "  ")
	if err != nil {
		return err
	}
	if err := os.Remove(s.adoptedPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return atomicfile.Write(s.path(), append(b, '\n'))
}

// adopt appends an adopted network to adoptedFile.
func (s *store) adopt(n Network) error {
	line, err := json.Marshal(n)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(s.adoptedPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

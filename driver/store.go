package driver

import (
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

type store struct {
	dir string
	mu  sync.Mutex // serialises save; held across the write on purpose
}

func newStore(dir string) *store { return &store{dir: dir} }

func (s *store) path() string { return filepath.Join(s.dir, stateFile) }

func (s *store) load() (map[string]Network, error) {
	networks := map[string]Network{}
	b, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return networks, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading hostpass state: %w", err)
	}
	var list []Network
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("hostpass state %s is not valid JSON (%v): fix it or move it away; hostpass will not overwrite it", s.path(), err)
	}
	for _, n := range list {
		networks[n.ID] = n
	}
	return networks, nil
}

// save replaces the state file atomically: a crash leaves either the old
// state or the new, never half of one.
func (s *store) save(networks []Network) error {
	sort.Slice(networks, func(i, j int) bool { return networks[i].ID < networks[j].ID })
	b, err := json.MarshalIndent(networks, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path(), append(b, '\n'))
}

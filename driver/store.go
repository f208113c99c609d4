package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
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

// save writes a temporary file, fsyncs it and renames it over the old one, so
// a crash leaves either the old state or the new, never half of one.
func (s *store) save(networks []Network) error {
	sort.Slice(networks, func(i, j int) bool { return networks[i].ID < networks[j].ID })
	b, err := json.MarshalIndent(networks, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, stateFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path()); err != nil {
		return err
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

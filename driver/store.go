package driver

// This file is the driver's state on disk: what is saved, when, and how it
// is read back at start.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// small append each. A line lost in a crash or a full disk costs nothing but
// a second adoption at the network's next call (its records say adopted
// either way). The next full save folds the lines into stateFile.
const adoptedFile = "networks.adopted.jsonl"

// load fills d.networks from the state directory. New calls it before d is
// shared, so it takes no lock. Past maxAdopted adopted networks, the rest
// are dropped: served and audited as adopted at each call, as after a lost
// state, but not remembered.
func (d *Driver) load() error {
	loaded, skipped, err := d.store.load()
	if err != nil {
		return err
	}
	for _, why := range skipped {
		d.cfg.Log.Warn(why)
	}
	ids := make([]string, 0, len(loaded))
	for id := range loaded {
		ids = append(ids, id)
	}
	sort.Strings(ids) // which adoptions are kept past the limit does not depend on map order
	dropped := 0
	for _, id := range ids {
		if n := loaded[id]; !n.Adopted || d.adopted < maxAdopted {
			d.put(n)
		} else {
			dropped++
		}
	}
	if dropped > 0 {
		d.cfg.Log.WithField("limit", maxAdopted).WithField("dropped", dropped).
			Warn("the saved state holds more adopted networks than hostpass remembers: the rest are served and audited as adopted at each call, but not remembered")
	}
	return nil
}

// save writes every known network to the state directory.
func (d *Driver) save() error {
	d.store.mu.Lock() // serialises saves so the last one written is the newest
	defer d.store.mu.Unlock()
	d.mu.Lock()
	snapshot := make([]Network, 0, len(d.networks))
	for _, n := range d.networks {
		snapshot = append(snapshot, n)
	}
	d.mu.Unlock()
	if err := d.store.save(snapshot); err != nil {
		return unavailable("cannot save hostpass state: %w", err)
	}
	return nil
}

// remember saves the adoption of n, unless n was deleted or created since:
// the save that did that holds the newer state, and an adoption appended
// after it would bring a deleted network back at the next start. The check
// and the append are made under store.mu, which every save holds.
func (d *Driver) remember(n Network) error {
	d.store.mu.Lock()
	defer d.store.mu.Unlock()
	d.mu.Lock()
	cur, ok := d.networks[n.ID]
	d.mu.Unlock()
	if !ok || !cur.Adopted {
		return nil
	}
	return d.store.adopt(n)
}

// appendFile is what an adoption writes to: an *os.File; tests inject one
// that fails.
type appendFile interface {
	io.WriteCloser
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
}

type store struct {
	dir string
	// mu serialises save and adopt, and is held across their writes on
	// purpose: the driver checks, under mu, that an adoption is still
	// current before appending it (Driver.remember), so no append can
	// follow a save that dropped its network.
	mu sync.Mutex
	// cannotAppend is set when a failed append could not be cut back off
	// adoptedFile: nothing more is appended after a partial line until a
	// save replaces the file. Guarded by mu.
	cannotAppend bool
	openAppend   func(path string) (appendFile, error)
}

func newStore(dir string) *store {
	return &store{dir: dir, openAppend: func(path string) (appendFile, error) {
		return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	}}
}

func (s *store) path() string        { return filepath.Join(s.dir, stateFile) }
func (s *store) adoptedPath() string { return filepath.Join(s.dir, adoptedFile) }

// load reads the saved networks. A stateFile that cannot be read stops the
// daemon: the tags and --internal flags of the networks Docker created
// cannot be recovered. A line of adoptedFile that cannot be read is skipped,
// and named in skipped: the network is adopted again at its next call.
func (s *store) load() (networks map[string]Network, skipped []string, err error) {
	networks = map[string]Network{}
	b, err := os.ReadFile(s.path())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("reading hostpass state: %w", err)
	}
	if err == nil {
		var list []Network
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, nil, fmt.Errorf("hostpass state %s is not valid JSON (%w): fix it or move it away; hostpass will not overwrite it", s.path(), err)
		}
		for _, n := range list {
			networks[n.ID] = n
		}
	}
	skipped, err = s.loadAdopted(networks)
	return networks, skipped, err
}

// loadAdopted adds the adopted networks to networks, and says which lines
// it skipped and why.
func (s *store) loadAdopted(networks map[string]Network) (skipped []string, err error) {
	b, err := os.ReadFile(s.adoptedPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading hostpass state: %w", err)
	}
	lines := bytes.Split(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, line := range lines {
		var n Network
		err := json.Unmarshal(line, &n)
		if err == nil && !isNetworkID(n.ID) {
			err = fmt.Errorf("id %s is not a Docker network ID", quote(n.ID))
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s line %d (%d bytes) is not an adopted network (%v): skipped; the network is adopted again at its next call", s.adoptedPath(), i+1, len(line), err))
			continue
		}
		n.Adopted = true
		if _, ok := networks[n.ID]; !ok {
			networks[n.ID] = n
		}
	}
	return skipped, nil
}

// save replaces the state file atomically: a crash leaves either the old
// state or the new, never half of one. It holds every network, adopted ones
// too, so the adoption lines are dropped first: a crash in between loses
// adoptions (they happen again), never brings a deleted network back.
// The caller holds mu.
func (s *store) save(networks []Network) error {
	sort.Slice(networks, func(i, j int) bool { return networks[i].ID < networks[j].ID })
	b, err := json.MarshalIndent(networks, "", "  ")
	if err != nil {
		return err
	}
	if err := os.Remove(s.adoptedPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.cannotAppend = false // the file with the partial line is gone
	return atomicfile.Write(s.path(), append(b, '\n'))
}

// adopt appends an adopted network to adoptedFile. A write that fails (a
// full disk) is cut back off, so that the next line does not follow a
// partial one. The caller holds mu.
func (s *store) adopt(n Network) error {
	if s.cannotAppend {
		return fmt.Errorf("%s ends in a partial line that could not be cut off; adoptions are saved again once the state is rewritten", s.adoptedPath())
	}
	line, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if err := atomicfile.MkdirAll(s.dir, 0o750); err != nil {
		return err
	}
	f, err := s.openAppend(s.adoptedPath())
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		if cerr := f.Truncate(fi.Size()); cerr != nil {
			s.cannotAppend = true
			return fmt.Errorf("%w; cutting the partial line off failed: %w", err, cerr)
		}
		return err
	}
	return f.Close()
}

package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// A log is its current file (say audit.jsonl) and the files rotated away
// from it, named audit.jsonl.<seq of their first record, 20 digits>, so
// that names sort in chain order. A rotated file may be gzipped by the
// operator (audit.jsonl.<seq>.gz); readers take both.

func rotatedName(path string, firstSeq uint64) string {
	return fmt.Sprintf("%s.%020d", path, firstSeq)
}

var rotatedSuffix = regexp.MustCompile(`^\.(\d{20})(\.gz)?$`)

// Files returns the files of the log whose current file is path, in chain
// order: rotated files by first seq, then the current file if it exists.
func Files(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var rotated []string
	current := false
	for _, e := range entries {
		name := e.Name()
		if name == base {
			current = true
			continue
		}
		if strings.HasPrefix(name, base) && rotatedSuffix.MatchString(name[len(base):]) {
			rotated = append(rotated, filepath.Join(dir, name))
		}
	}
	sort.Strings(rotated) // equal-width numbers sort as numbers
	if current {
		rotated = append(rotated, filepath.Join(dir, base))
	}
	return rotated, nil
}

// FilesIn finds the one log in dir: the current file is the *.jsonl whose
// name the rotated files extend. It refuses a dir holding several logs.
func FilesIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	bases := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".jsonl") {
			bases[name] = true
			continue
		}
		if i := strings.Index(name, ".jsonl."); i >= 0 && rotatedSuffix.MatchString(name[i+len(".jsonl"):]) {
			bases[name[:i+len(".jsonl")]] = true
		}
	}
	if len(bases) != 1 {
		var names []string
		for b := range bases {
			names = append(names, b)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%s holds %d audit logs (%s): name the log's file instead", dir, len(bases), strings.Join(names, ", "))
	}
	for b := range bases {
		return Files(filepath.Join(dir, b))
	}
	return nil, nil
}

func (l *Log) rotate() error {
	c := &l.c
	if c.f == nil {
		if err := l.open(); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	if c.size == 0 {
		return nil
	}
	to := rotatedName(l.path, c.fileFirstSeq)
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("cannot rotate %s: %s exists", l.path, to)
	}
	c.f.Close()
	c.f = nil
	if err := os.Rename(l.path, to); err != nil {
		return err
	}
	f, err := openLogFile(l.path)
	if err != nil {
		return err
	}
	c.f, c.size = f, 0
	l.o.Log.WithField("file", to).Info("audit log rotated")
	return syncDir(filepath.Dir(l.path))
}

// rotatedEnd caches the end of the newest rotated file, so that retrying
// open() every second during an outage does not read it again.
type rotatedEnd struct {
	name string
	size int64
	mod  time.Time
	end  *chainEnd
}

// lastRotated returns the last record of the newest rotated file, if any.
func (l *Log) lastRotated() (*chainEnd, error) {
	files, err := Files(l.path)
	if err != nil {
		return nil, err
	}
	var newest string
	for _, f := range files {
		if f != l.path {
			newest = f
		}
	}
	if newest == "" {
		return nil, nil
	}
	st, err := os.Stat(newest)
	if err != nil {
		return nil, err
	}
	if c := l.c.rotated; c.end != nil && c.name == newest && c.size == st.Size() && c.mod.Equal(st.ModTime()) {
		return c.end, nil
	}
	end, err := readLastRecord(newest)
	if err != nil {
		return nil, err
	}
	l.c.rotated = rotatedEnd{name: newest, size: st.Size(), mod: st.ModTime(), end: end}
	return end, nil
}

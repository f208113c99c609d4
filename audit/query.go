package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// Filter selects records. Empty fields match everything. Network and
// Endpoint match an ID or its prefix; Event matches an event or a prefix of
// one ("endpoint." for all endpoint events).
type Filter struct {
	Network, Endpoint, Event string
	Since, Until             time.Time
}

// Match reports whether r passes the filter.
func (f Filter) Match(r *Record) bool {
	switch {
	case f.Network != "" && !strings.HasPrefix(r.NetworkID, f.Network):
		return false
	case f.Endpoint != "" && !strings.HasPrefix(r.EndpointID, f.Endpoint):
		return false
	case f.Event != "" && !strings.HasPrefix(r.Event, f.Event):
		return false
	case !f.Since.IsZero() && r.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && r.Time.After(f.Until):
		return false
	}
	return true
}

// mayMatch is a cheap test on the raw line: whatever it rejects, Match
// would reject too, so most lines of a large log are never decoded.
func (f Filter) mayMatch(line []byte) bool {
	for _, s := range []string{f.Network, f.Endpoint} {
		if s != "" && !bytes.Contains(line, []byte(s)) {
			return false
		}
	}
	if f.Event != "" && !bytes.Contains(line, []byte(`"event":"`+f.Event)) {
		return false
	}
	return true
}

// Query calls fn with every record of files that passes f, in log order.
func Query(files []string, f Filter, fn func(r *Record, line []byte) error) error {
	for _, path := range files {
		r, err := openReader(path)
		if err != nil {
			return err
		}
		err = eachLine(r, func(line []byte, complete bool) error {
			if !complete {
				return nil // a torn last line: verify reports it
			}
			return match(f, line, fn)
		})
		r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func match(f Filter, line []byte, fn func(r *Record, line []byte) error) error {
	if !f.mayMatch(line) {
		return nil
	}
	var rec Record
	if err := json.Unmarshal(line, &rec); err != nil {
		return nil // verify reports it
	}
	if !f.Match(&rec) {
		return nil
	}
	return fn(&rec, line)
}

// followPoll is how often Follow looks for new records.
const followPoll = 200 * time.Millisecond

// Follow calls fn with the records appended to the log at path from now on,
// until ctx ends. It follows the log across rotation.
func Follow(ctx context.Context, path string, f Filter, fn func(r *Record, line []byte) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { file.Close() }()
	if _, err := file.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	var partial []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := file.Read(buf)
		if n > 0 {
			partial = append(partial, buf[:n]...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				if err := match(f, partial[:i], fn); err != nil {
					return err
				}
				partial = partial[i+1:]
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		// At the end: has the file been rotated away?
		if rotated(file, path) {
			next, err := os.Open(path)
			if err == nil {
				file.Close()
				file, partial = next, nil
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}

// rotated reports whether path now names a different file than f.
func rotated(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	if err1 != nil || err2 != nil {
		return false
	}
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && (sa.Ino != sb.Ino || sa.Dev != sb.Dev)
}

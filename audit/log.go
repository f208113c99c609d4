package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// retryInterval is how often records kept in memory are offered to the disk
// again while the log is unwritable.
const retryInterval = time.Second

// ErrUnavailable marks every error that means "the record is not durable".
var ErrUnavailable = errors.New("audit log unavailable")

// Log is the append-only audit file. Open never fails: an unwritable path
// shows up as an error from Append, so that the daemon can keep serving
// teardown while refusing creates and joins.
type Log struct {
	path   string
	mirror func(line []byte)

	// mu guards every field below. It is held across write and fsync on
	// purpose: the order of seq numbers must be the order in the file.
	mu       sync.Mutex
	f        *os.File
	size     int64  // bytes of complete, durable records in f
	seq      uint64 // seq of the last durable record
	pending  []Record
	retrying bool
	closed   bool
}

// Open returns the log at path. mirror, if not nil, receives every line once
// it is durable (the daemon copies it to its own log).
func Open(path string, mirror func(line []byte)) *Log {
	return &Log{path: path, mirror: mirror}
}

// Path is the file the log writes.
func (l *Log) Path() string { return l.path }

// Append makes rec durable and returns nil, or returns an error wrapping
// ErrUnavailable and keeps nothing. Records kept back by AppendOrKeep are
// written first.
func (l *Log) Append(rec Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	recs := append(append([]Record(nil), l.pending...), rec)
	if err := l.writeLocked(recs); err != nil {
		return err
	}
	l.pending = nil
	return nil
}

// AppendOrKeep makes rec durable, or keeps it in memory and writes it as soon
// as the log is writable again. The error says why it is not durable yet.
func (l *Log) AppendOrKeep(rec Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, rec)
	if err := l.writeLocked(l.pending); err != nil {
		if !l.retrying && !l.closed {
			l.retrying = true
			go l.retry()
		}
		return err
	}
	l.pending = nil
	return nil
}

// Pending is the number of records waiting in memory for the disk.
func (l *Log) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// Close writes what is pending and closes the file. Records it cannot write
// are reported in the error; they are lost with the process.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	var err error
	if len(l.pending) > 0 {
		if err = l.writeLocked(l.pending); err == nil {
			l.pending = nil
		} else {
			err = fmt.Errorf("%d audit records could not be written: %w", len(l.pending), err)
		}
	}
	if l.f != nil {
		if cerr := l.f.Close(); cerr != nil && err == nil {
			err = cerr
		}
		l.f = nil
	}
	return err
}

func (l *Log) retry() {
	for {
		time.Sleep(retryInterval)
		l.mu.Lock()
		if l.closed || len(l.pending) == 0 {
			l.retrying = false
			l.mu.Unlock()
			return
		}
		if err := l.writeLocked(l.pending); err == nil {
			l.pending = nil
		}
		l.mu.Unlock()
	}
}

// writeLocked numbers recs, writes them in one write and fsyncs. On failure
// the file is cut back to its last durable size and closed, so a half-written
// line never stays behind and the next attempt re-reads the file's tail.
func (l *Log) writeLocked(recs []Record) error {
	if l.f == nil {
		if err := l.openLocked(); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	var buf bytes.Buffer
	var lines [][]byte
	seq := l.seq
	for i := range recs {
		seq++
		recs[i].Seq = seq
		line, err := json.Marshal(recs[i])
		if err != nil {
			return fmt.Errorf("%w: encoding record: %v", ErrUnavailable, err)
		}
		lines = append(lines, line)
		buf.Write(line)
		buf.WriteByte('\n')
	}
	_, err := l.f.Write(buf.Bytes())
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		l.f.Truncate(l.size) // best effort; the reopen checks the tail again
		l.f.Close()
		l.f = nil
		return fmt.Errorf("%w: writing %s: %v", ErrUnavailable, l.path, err)
	}
	l.size += int64(buf.Len())
	l.seq = seq
	if l.mirror != nil {
		for _, line := range lines {
			l.mirror(line)
		}
	}
	return nil
}

// openLocked opens (or creates) the file and finds the last durable seq. A
// trailing partial line, left by a crash in the middle of a write, is cut off.
func (l *Log) openLocked() error {
	dir := filepath.Dir(l.path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	size, seq, partial, err := lastRecord(f)
	if err != nil {
		f.Close()
		return err
	}
	if partial {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return err
	}
	l.f, l.size, l.seq = f, size, seq
	return nil
}

// tailWindow bounds how far back from the end the last record is searched.
const tailWindow = 1 << 20

// lastRecord returns the length of the file up to its last newline, the seq
// of the last complete record, and whether a partial line follows it.
func lastRecord(f *os.File) (size int64, seq uint64, partial bool, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, false, err
	}
	start := st.Size() - tailWindow
	if start < 0 {
		start = 0
	}
	tail := make([]byte, st.Size()-start)
	if _, err := f.ReadAt(tail, start); err != nil && err != io.EOF {
		return 0, 0, false, err
	}
	end := bytes.LastIndexByte(tail, '\n')
	if end < 0 {
		if start > 0 {
			return 0, 0, false, fmt.Errorf("%s: no record boundary in its last %d bytes", f.Name(), tailWindow)
		}
		return 0, 0, len(tail) > 0, nil // empty, or one partial line: nothing durable yet
	}
	line := tail[bytes.LastIndexByte(tail[:end], '\n')+1 : end]
	var last struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(line, &last); err != nil || last.Seq == 0 {
		return 0, 0, false, fmt.Errorf("%s: its last line is not an audit record, so the next seq is unknown; move the file away to start a new log", f.Name())
	}
	size = start + int64(end) + 1
	return size, last.Seq, size < st.Size(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

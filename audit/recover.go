package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hostpass/hostpass/atomicfile"
)

// Recovery: opening the current file, picking the chain up where it ends
// (tail.go), and setting aside what a crash or a failed write left past the
// last record.

// logFile is the current file as the committer uses it; tests wrap it to
// inject faults.
type logFile interface {
	io.Writer
	io.ReaderAt
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Name() string
	Close() error
}

var openLogFile = func(path string) (logFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// open opens (or creates) the current file and picks the chain up from its
// last record, or from the newest rotated file when it is empty. A partial
// last line, left by a crash in the middle of a write, was never
// acknowledged: it is moved to a side file, reported, and recorded. So are
// the bytes of a failed write that could not be cut off at the time.
func (l *Log) open() error {
	c := &l.c
	dir := filepath.Dir(l.path)
	if err := atomicfile.MkdirAll(dir, 0o750); err != nil { // fsyncs the parent of each directory it creates
		return err
	}
	f, err := openLogFile(l.path)
	if err != nil {
		return err
	}
	end := int64(-1)
	if c.uncut != nil {
		end = c.size
	}
	marked, err := readUncut(l.path)
	if err != nil {
		f.Close()
		return err
	}
	if marked >= 0 {
		end = marked
		if c.uncut == nil {
			c.uncut = fmt.Errorf("the cut was still owed when the log was opened, as %s recorded", uncutName(l.path))
		}
	}
	t, err := readTail(f, end)
	if err != nil {
		f.Close()
		return err
	}
	last := t.last
	if last == nil && t.size == 0 {
		if last, err = l.lastRotated(); err != nil {
			f.Close()
			return err
		}
	}
	if t.torn > 0 {
		if err := l.setAside(f, t); err != nil {
			f.Close()
			return err
		}
	}
	if marked >= 0 {
		if err := os.Remove(uncutName(l.path)); err != nil {
			f.Close()
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return err
	}
	c.f, c.size, c.fileFirstSeq, c.uncut = f, t.size, t.firstSeq, nil
	c.seq, c.prev = 0, Genesis
	if last == nil && c.key != nil && c.epoch > 0 {
		l.o.Log.WithField("epoch", c.epoch).Warn("audit log: starting a new sealed log with a key that has evolved: `hostpass audit verify --key` refuses it as a late start, since it cannot tell it from a log forged with a copied key, unless given --start 1:HASH with its first record's hash; start a new log with a new key (hostpass audit keygen) instead")
	}
	if !c.start.looked {
		c.start.found, c.start.looked = last, true
	}
	if c.sign != nil {
		if err := l.openSigned(last); err != nil {
			c.f.Close()
			c.f = nil
			return err
		}
	}
	if last != nil {
		c.seq, c.prev = last.Seq, last.Hash
		if c.key != nil {
			// The daemon steps the key one epoch at a time, after the
			// audit.epoch record: a tail one step ahead of the key file
			// is a crash between the two; anything further is not a log
			// this key sealed (and anyone can append a plain line
			// claiming epoch 2^50, which would take years to step to).
			target := c.epoch
			if last.Epoch != nil && *last.Epoch > target {
				target = *last.Epoch
			}
			if last.NextEpoch != nil && *last.NextEpoch > target {
				target = *last.NextEpoch // the epoch ended, the key file did not follow
			}
			if target-c.epoch > 1 {
				c.f.Close()
				c.f = nil
				return fmt.Errorf("%s: its last record, seq %d, claims epoch %d, %d key steps past the key file's epoch %d (the daemon steps one at a time, so at most 1): not a log this key sealed, or the key file is not this log's; check it with `hostpass audit verify --key`, then move the log aside or restore the key file", l.path, last.Seq, target, target-c.epoch, c.epoch)
			}
			if target > c.epoch {
				l.advanceKey(target)
			}
		}
	}
	return nil
}

// Durability cannot be seen without a power cut; tests replace these to
// check what is synced, and when.
var (
	syncDir  = atomicfile.SyncDir
	syncFile = (*os.File).Sync
)

// A write that failed and could not be cut off leaves records whose callers
// were told "failed" in the file. The log remembers where the acknowledged
// records end in <log>.uncut, fsynced, so that a restart (or a kill -9)
// before the cut succeeds still sets them aside instead of chaining on.

func uncutName(path string) string { return path + ".uncut" }

// writeUncut records size, the end of the last acknowledged record.
func writeUncut(path string, size int64) error {
	return atomicfile.Write(uncutName(path), []byte(strconv.FormatInt(size, 10)+"\n"))
}

// readUncut returns the size writeUncut recorded, or -1 if there is none.
func readUncut(path string) (int64, error) {
	b, err := os.ReadFile(uncutName(path))
	if errors.Is(err, os.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	size, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || size < 0 {
		return 0, fmt.Errorf("%s: %q is not the size of the acknowledged records (a decimal number of bytes): move it away only once you know where the records acknowledged to their callers end", uncutName(path), b)
	}
	return size, nil
}

// setAside copies the bytes past t.size to a side file, makes that durable,
// and only then cuts them off the log.
func (l *Log) setAside(f logFile, t tail) error {
	saved := fmt.Sprintf("%s.torn-%s", l.path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	side, err := os.OpenFile(saved, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(side, io.NewSectionReader(f, t.size, t.torn))
	if err == nil {
		err = syncFile(side)
	}
	if cerr := side.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(saved))
	}
	if err != nil {
		return fmt.Errorf("setting aside the %d bytes past the last record of %s: %w", t.torn, l.path, err)
	}
	if err := f.Truncate(t.size); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	detail := fmt.Sprintf("a crash left a partial line of %d bytes at the end of %s; it was never acknowledged; its bytes are in %s",
		t.torn, l.path, saved)
	if l.c.uncut != nil {
		detail = fmt.Sprintf("a write that failed left %d bytes at the end of %s, and cutting them off failed then (%v); their callers were told the write failed, so they are not part of the chain; the bytes are in %s",
			t.torn, l.path, l.c.uncut, saved)
	}
	// Said once: the record reaches the daemon's log through the mirror.
	rec := l.selfRecord(TornTail, detail)
	l.c.torn = &rec
	return nil
}

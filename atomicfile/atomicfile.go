// Package atomicfile replaces a file so that a crash leaves either the old
// content or the new, never half of one, and the change survives power loss.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// syncDir is SyncDir; tests replace it to see which directories were synced.
var syncDir = SyncDir

// Write writes data to a temporary file beside path, fsyncs it, renames it
// over path and fsyncs the directory. The directory is created if needed.
func Write(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
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
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// MkdirAll creates dir and its missing parents, as os.MkdirAll does, and
// fsyncs the parent of each directory it creates: a new directory is an
// entry in its parent, and without that fsync a power cut can lose it, and
// with it every file later made durable inside it.
func MkdirAll(dir string, perm os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: errors.New("not a directory")}
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, os.ErrExist) { // made by someone else meanwhile
			return nil
		}
		return err
	}
	return syncDir(parent)
}

// SyncDir fsyncs a directory, making renames and new files in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

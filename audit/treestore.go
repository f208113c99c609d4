package audit

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

// The tree store: the daemon's Merkle tree on disk, beside the log, in
// <log>.tree (Files and FilesIn do not take it for a log file). It holds
// tlog's stored hashes, 32 bytes each, at offset 32 × tlog.StoredHashIndex,
// and nothing else, so it only ever grows at its end. It is not fsynced: it
// is never trusted over the log, and OpenTree rebuilds from the log whatever
// of it is missing, short, torn or damaged.

// TreeStorePath is the tree store of the log whose current file is logPath.
func TreeStorePath(logPath string) string { return logPath + ".tree" }

// fileHashes is a tree store file.
type fileHashes struct {
	f       *os.File
	have    int64 // stored hashes in the file
	written int64 // stored hashes written since the store was opened
}

func (s *fileHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= s.have {
			return nil, fmt.Errorf("stored hash %d is past the store's %d", x, s.have)
		}
		if _, err := s.f.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *fileHashes) write(at int64, hs []tlog.Hash) error {
	if at != s.have {
		return fmt.Errorf("stored hashes written at %d, not at the end (%d)", at, s.have)
	}
	b := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	if _, err := s.f.WriteAt(b, at*tlog.HashSize); err != nil {
		return err
	}
	s.have += int64(len(hs))
	s.written += int64(len(hs))
	return nil
}

// cut drops the stored hashes from index at on.
func (s *fileHashes) cut(at int64) error {
	if err := s.f.Truncate(at * tlog.HashSize); err != nil {
		return err
	}
	s.have = at
	return nil
}

func (s *fileHashes) close() error { return s.f.Close() }

// OpenTree opens the tree store of the log whose current file is logPath,
// creating it if missing, and checks it against the log: every record is
// read and hashed again, and the store is cut at its first stored hash that
// differs from the log's, or past the log's end, and written again from
// there. That costs what BuildTree does, once per open.
//
// A log whose oldest files were removed (its first record is seq S > 1)
// has its first S-1 leaves in the store only: those are kept as they are,
// unchecked, and a store without them is refused.
func OpenTree(logPath string) (*Tree, error) {
	files, err := Files(logPath)
	if err != nil {
		return nil, err
	}
	first, err := firstSeq(files)
	if err != nil {
		return nil, err
	}
	path := TreeStorePath(logPath)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &fileHashes{f: f, have: st.Size() / tlog.HashSize}
	if st.Size()%tlog.HashSize != 0 { // a torn write: drop its part of a hash
		if err := s.cut(s.have); err != nil {
			f.Close()
			return nil, err
		}
	}
	t := &Tree{hashes: s}
	if first > 1 {
		t.n = int64(first) - 1
		if s.have < tlog.StoredHashCount(t.n) {
			f.Close()
			return nil, fmt.Errorf("%s holds %d stored hashes, short of the %d of the records before seq %d, the log's first: those records are in no file, so the tree cannot be rebuilt; restore the store, or the log's removed files", path, s.have, tlog.StoredHashCount(t.n), first)
		}
	}
	if err := eachRecord(files, t.n, t.reconcile); err != nil {
		f.Close()
		return nil, fmt.Errorf("rebuilding %s from the log: %w", path, err)
	}
	if end := tlog.StoredHashCount(t.n); s.have > end {
		if err := s.cut(end); err != nil {
			f.Close()
			return nil, err
		}
	}
	return t, nil
}

// reconcile adds leaves to a tree whose store may hold them already: what
// the store holds is kept where it matches what the leaves give, and cut
// at the first stored hash that does not. OpenTree calls it before the tree
// is shared, so it takes no lock.
func (t *Tree) reconcile(leaves []tlog.Hash) error {
	s := t.hashes.(*fileHashes)
	base := tlog.StoredHashCount(t.n)
	if s.have <= base {
		return t.appendHashes(leaves)
	}
	r := &pending{store: s, base: base, hs: make([]tlog.Hash, 0, tlog.StoredHashCount(t.n+int64(len(leaves)))-base)}
	n := t.n
	for _, h := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(n, h, r)
		if err != nil {
			return err
		}
		r.hs = append(r.hs, hs...)
		n++
	}
	stored := make([]byte, min(int64(len(r.hs)), s.have-base)*tlog.HashSize)
	if _, err := s.f.ReadAt(stored, base*tlog.HashSize); err != nil {
		return err
	}
	for i, h := range r.hs {
		if i*tlog.HashSize >= len(stored) || !bytes.Equal(h[:], stored[i*tlog.HashSize:(i+1)*tlog.HashSize]) {
			if err := s.cut(base + int64(i)); err != nil {
				return err
			}
			if err := s.write(base+int64(i), r.hs[i:]); err != nil {
				return err
			}
			break
		}
	}
	t.n = n
	return nil
}

// firstSeq is the seq of the log's first record, 0 for an empty log.
func firstSeq(files []string) (uint64, error) {
	for _, path := range files {
		var seq uint64
		found := false
		err := eachBatch(path, func(*batch) {}, func(b *batch) error {
			if len(b.lines) == 0 {
				return nil
			}
			var ok bool
			if seq, ok = lineSeq(b.lines[0]); !ok {
				return fmt.Errorf("%s, line 1: no seq: run `hostpass audit verify`", path)
			}
			found = true
			return errStopped
		})
		if err != nil && err != errStopped {
			return 0, err
		}
		if found {
			return seq, nil
		}
	}
	return 0, nil
}

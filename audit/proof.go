package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// The Merkle tree over the log: RFC 6962 hashing, through
// golang.org/x/mod/sumdb/tlog (nothing here hashes or proves by hand).
//
// Leaf i is the record whose seq is i+1, and its data is that record's line
// exactly as written: every byte, its "hash" member included, without the
// newline. The chain stays as it is; the tree adds to it. The leaf takes
// the line whole, hash member and all, because the line is what everyone
// holds (the file, show's output, a collector's copy): anyone can hash it
// without re-encoding anything, and the leaf commits to the line's seal too. The tree always
// counts from the genesis record, whatever files remain, so a root or a
// proof means the same for every copy of the log: a log whose oldest files
// were removed (verify --start SEQ:HASH) still has its first present record
// at leaf SEQ-1, and the leaves before it must come from a tree store that
// holds them (OpenTree), since no file does.
//
// The tree keeps tlog's stored hashes (tlog.StoredHashIndex order: about two
// per record, 32 bytes each, so 64 bytes a record: 61 MiB for 1,000,000):
// in memory for BuildTree, in a file beside the log for OpenTree
// (treestore.go).

// LeafIndex is the tree index of the record with seq.
func LeafIndex(seq uint64) int64 { return int64(seq) - 1 }

// Tree is the Merkle tree of a log's records, in seq order.
type Tree struct {
	mu     sync.Mutex // guards n and what hashes holds; held across the store's I/O, so that appends land in order
	n      int64      // records in the tree
	hashes hashStore
}

// hashStore holds a tree's stored hashes.
type hashStore interface {
	tlog.HashReader
	// write stores hs at stored-hash index at, the end of what is stored.
	write(at int64, hs []tlog.Hash) error
	close() error
}

// memHashes keeps the stored hashes in memory, in chunks: growing one slice
// of millions of hashes would copy it again and again.
type memHashes struct {
	chunks [][]tlog.Hash // each memChunk long but the last
	n      int64
}

const memChunk = 1 << 16

func (m *memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= m.n {
			return nil, fmt.Errorf("stored hash %d is past the tree's %d", x, m.n)
		}
		out[i] = m.chunks[x/memChunk][x%memChunk]
	}
	return out, nil
}

func (m *memHashes) write(at int64, hs []tlog.Hash) error {
	if at != m.n {
		return fmt.Errorf("stored hashes written at %d, not at the end (%d)", at, m.n)
	}
	for _, h := range hs {
		if m.n%memChunk == 0 {
			m.chunks = append(m.chunks, make([]tlog.Hash, 0, memChunk))
		}
		last := len(m.chunks) - 1
		m.chunks[last] = append(m.chunks[last], h)
		m.n++
	}
	return nil
}

func (m *memHashes) close() error { return nil }

// NewTree returns an empty tree held in memory.
func NewTree() *Tree { return &Tree{hashes: &memHashes{}} }

// Size is the number of records in the tree.
func (t *Tree) Size() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Append adds lines, each one record's line without its newline, as the
// next leaves. Several lines (a group commit) are stored in one write. On
// error the tree is as it was.
func (t *Tree) Append(lines ...[]byte) error {
	hs := make([]tlog.Hash, len(lines))
	for i, l := range lines {
		hs[i] = tlog.RecordHash(l)
	}
	return t.appendHashes(hs)
}

// appendHashes adds leaves given by their record hashes
// (tlog.RecordHash of each line).
func (t *Tree) appendHashes(leaves []tlog.Hash) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	base := tlog.StoredHashCount(t.n)
	r := &pending{store: t.hashes, base: base, hs: make([]tlog.Hash, 0, tlog.StoredHashCount(t.n+int64(len(leaves)))-base)}
	n := t.n
	for _, h := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(n, h, r)
		if err != nil {
			return fmt.Errorf("merkle tree: adding record %d: %w", n+1, err)
		}
		r.hs = append(r.hs, hs...)
		n++
	}
	if err := t.hashes.write(base, r.hs); err != nil {
		return fmt.Errorf("merkle tree: storing records %d to %d: %w", t.n+1, n, err)
	}
	t.n = n
	return nil
}

// pending reads stored hashes from an append under way (index base and
// on) and from the store (before base).
type pending struct {
	store tlog.HashReader
	base  int64
	hs    []tlog.Hash
}

func (p *pending) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	var old []int64
	for _, x := range idx {
		if x < p.base {
			old = append(old, x)
		}
	}
	var got []tlog.Hash
	if len(old) > 0 {
		var err error
		if got, err = p.store.ReadHashes(old); err != nil {
			return nil, err
		}
	}
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < p.base {
			out[i], got = got[0], got[1:]
			continue
		}
		if x-p.base >= int64(len(p.hs)) {
			return nil, fmt.Errorf("stored hash %d is not written yet", x)
		}
		out[i] = p.hs[x-p.base]
	}
	return out, nil
}

// Root is the tree's root hash (RFC 6962's hash of the empty string for
// no records).
func (t *Tree) Root() (tlog.Hash, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return tlog.TreeHash(t.n, t.hashes)
}

// RootAt is the root hash the tree had at size records.
func (t *Tree) RootAt(size int64) (tlog.Hash, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if size < 0 || size > t.n {
		return tlog.Hash{}, fmt.Errorf("no root for a tree of %d records: the tree holds %d", size, t.n)
	}
	return tlog.TreeHash(size, t.hashes)
}

// ProveRecord proves that the record at leaf index i is in the tree of size
// records.
func (t *Tree) ProveRecord(size, i int64) (tlog.RecordProof, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if size > t.n || i < 0 || i >= size {
		return nil, fmt.Errorf("cannot prove record seq %d in a tree of %d records: the tree holds %d, and a record proof needs 1 <= seq <= size", i+1, size, t.n)
	}
	return tlog.ProveRecord(size, i, t.hashes)
}

// ProveTree proves that the tree of oldSize records is a prefix of the tree
// of size records (a consistency proof).
func (t *Tree) ProveTree(size, oldSize int64) (tlog.TreeProof, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if size > t.n || oldSize < 1 || oldSize > size {
		return nil, fmt.Errorf("cannot prove a tree of %d records consistent with one of %d: the tree holds %d, and a consistency proof needs 1 <= old size <= size", size, oldSize, t.n)
	}
	return tlog.ProveTree(size, oldSize, t.hashes)
}

// Close closes the tree's store, if it has one.
func (t *Tree) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hashes.close()
}

// ErrProof marks every proof that does not check.
var ErrProof = errors.New("the proof does not check")

// CheckRecord checks, with hashes only, that line is the record at seq in
// the tree of size records whose root is root.
func CheckRecord(p tlog.RecordProof, size int64, root tlog.Hash, seq uint64, line []byte) error {
	if seq < 1 || int64(seq) > size {
		return fmt.Errorf("%w: record seq %d cannot be in a tree of %d records", ErrProof, seq, size)
	}
	if err := tlog.CheckRecord(p, size, root, LeafIndex(seq), tlog.RecordHash(line)); err != nil {
		return fmt.Errorf("%w: the line given is not record seq %d of the tree of %d records with root %s (%w)", ErrProof, seq, size, root, err)
	}
	return nil
}

// CheckTree checks, with hashes only, that the tree of oldSize records with
// root oldRoot is a prefix of the tree of size records with root root: the
// log still holds everything the older root committed to.
func CheckTree(p tlog.TreeProof, size int64, root tlog.Hash, oldSize int64, oldRoot tlog.Hash) error {
	if oldSize < 1 || oldSize > size {
		return fmt.Errorf("%w: a tree of %d records cannot extend one of %d", ErrProof, size, oldSize)
	}
	if err := tlog.CheckTree(p, size, root, oldSize, oldRoot); err != nil {
		return fmt.Errorf("%w: the tree of %d records with root %s does not extend the tree of %d records with root %s: history was rewritten or cut (%w)", ErrProof, size, root, oldSize, oldRoot, err)
	}
	return nil
}

// BuildTree reads the log's files, in chain order, into a tree held in
// memory. The log must start at the genesis record (seq 1), and seqs must
// follow one another; it checks nothing else of the chain (Verify does).
func BuildTree(files []string) (*Tree, error) {
	t := NewTree()
	return t, eachRecord(files, 0, t.appendHashes)
}

// eachRecord reads files in chain order and calls fn with the record hashes
// of each batch of lines, computed on every core. The first line must be
// seq after+1 and each next line the following seq.
func eachRecord(files []string, after int64, fn func([]tlog.Hash) error) error {
	next := uint64(after) + 1
	for _, path := range files {
		var leaves sync.Map // *batch → []tlog.Hash, filled by work
		line := 0
		work := func(b *batch) {
			hs := make([]tlog.Hash, len(b.lines))
			for i, l := range b.lines {
				hs[i] = tlog.RecordHash(l)
			}
			leaves.Store(b, hs)
		}
		err := eachBatch(path, work, func(b *batch) error {
			for i, l := range b.lines {
				line++
				if i == len(b.lines)-1 && !b.complete {
					return fmt.Errorf("%s, line %d: the last line is incomplete (no newline): a torn write or a cut file is no record of the tree; run `hostpass audit verify`", path, line)
				}
				seq, ok := lineSeq(l)
				if !ok || seq != next {
					return fmt.Errorf("%s, line %d: expected seq %d as leaf %d of the tree, found %s: the tree is built on a log that verifies, from its genesis record; run `hostpass audit verify`", path, line, next, next-1, seqText(seq, ok))
				}
				next++
			}
			hs, _ := leaves.LoadAndDelete(b)
			return fn(hs.([]tlog.Hash))
		})
		if err == errLongLine {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// lineSeq reads a line's seq, fast for the lines hostpass writes.
func lineSeq(line []byte) (uint64, bool) {
	if _, seq, _, ok := fastHead(line); ok {
		return seq, true
	}
	var f struct {
		Seq *uint64 `json:"seq"`
	}
	if json.Unmarshal(line, &f) != nil || f.Seq == nil {
		return 0, false
	}
	return *f.Seq, true
}

func seqText(seq uint64, ok bool) string {
	if !ok {
		return "a line with no seq"
	}
	return fmt.Sprintf("seq %d", seq)
}

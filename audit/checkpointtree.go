package audit

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// The Merkle tree a signed log's committer keeps (proof.go's Tree, stored
// in <log>.tree): rebuilt from the log when a checkpoint needs it, appended
// beside each group commit's fsync, read through a bounded cache, and
// signed over in the write that carries a checkpoint.

// prepareCheckpoints makes sure the tree holds every durable record before
// a write with checkpoints: a checkpoint that cannot be signed (the tree
// cannot be rebuilt from the log) is dropped from recs and owed.
func (l *Log) prepareCheckpoints(recs []Record) []Record {
	s := l.c.sign
	if s == nil {
		return recs
	}
	has := false
	for i := range recs {
		has = has || recs[i].Event == Checkpoint
	}
	if !has {
		return recs
	}
	l.settleTree()
	if s.tree == nil && time.Now().Before(s.treeAfter) {
		return withoutCheckpoints(recs)
	}
	err := l.openTree()
	if err == nil {
		s.treeFailed = false
		return recs
	}
	if !s.treeFailed && errors.Is(err, errNotVouched) {
		l.o.Log.WithError(err).Errorf("audit log: refusing to sign over the log on disk; records are still written, no checkpoint is until the log is one this key signed (checked again every %s)", l.o.CheckpointInterval)
		s.treeFailed = true
	} else if !s.treeFailed {
		l.o.Log.WithError(err).Errorf("audit log: cannot rebuild the Merkle tree from the log; no checkpoint is written until it can be (tried again every %s)", l.o.CheckpointInterval)
		s.treeFailed = true
	}
	s.treeAfter = time.Now().Add(l.o.CheckpointInterval)
	return withoutCheckpoints(recs)
}

// withoutCheckpoints drops the checkpoints from recs: the tree is not
// there to sign. The schedule goes on; they are not owed.
func withoutCheckpoints(recs []Record) []Record {
	kept := make([]Record, 0, len(recs))
	for _, r := range recs {
		if r.Event != Checkpoint {
			kept = append(kept, r)
		}
	}
	return kept
}

// openTree opens the tree store beside the log, rebuilding what it lacks.
func (l *Log) openTree() error {
	c, s := &l.c, l.c.sign
	if s.tree != nil {
		return nil
	}
	t, err := OpenTree(l.path)
	if err != nil {
		return err
	}
	if n := t.Size(); n != int64(c.seq) {
		t.Close()
		return fmt.Errorf("the tree rebuilt from %s holds %d records, the log %d", l.path, n, c.seq)
	}
	if err := l.checkVouched(t); err != nil {
		t.Close()
		return err
	}
	t.hashes = &cachedHashes{hashStore: t.hashes, m: map[int64]tlog.Hash{}}
	s.tree = t
	return nil
}

// treeCache bounds the stored hashes cachedHashes keeps.
const treeCache = 1 << 14

// cachedHashes keeps in memory the stored hashes a tree store read or
// wrote last, up to treeCache of them (then it starts over): appending a
// record reads hashes on the tree's right edge, each a pread of the store
// otherwise. The tree's lock guards it.
type cachedHashes struct {
	hashStore
	m map[int64]tlog.Hash
}

func (c *cachedHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	var miss []int64
	var at []int
	for i, x := range idx {
		h, ok := c.m[x]
		if !ok {
			miss, at = append(miss, x), append(at, i)
		}
		out[i] = h
	}
	if len(miss) == 0 {
		return out, nil
	}
	got, err := c.hashStore.ReadHashes(miss)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = got[j]
		c.put(miss[j], got[j])
	}
	return out, nil
}

func (c *cachedHashes) write(at int64, hs []tlog.Hash) error {
	if err := c.hashStore.write(at, hs); err != nil {
		return err
	}
	for i, h := range hs {
		c.put(at+int64(i), h)
	}
	return nil
}

func (c *cachedHashes) put(x int64, h tlog.Hash) {
	if len(c.m) >= treeCache {
		clear(c.m)
	}
	c.m[x] = h
}

// signCheckpoint signs rec, an audit.checkpoint at seq in epoch: the tree
// of every record before it, the durable ones and before, those of this
// write (lines).
func (l *Log) signCheckpoint(rec *Record, seq, epoch uint64, lines [][]byte) error {
	s := l.c.sign
	key := s.key
	if r := s.retiring; r != nil && r.Epoch() == epoch {
		key = r // the epoch's last checkpoint, ahead of its audit.epoch
	}
	if key.Epoch() != epoch {
		return fmt.Errorf("a checkpoint in epoch %d, and the signing key is epoch %d's", epoch, key.Epoch())
	}
	root, err := s.tree.rootWith(lines)
	if err != nil {
		return err
	}
	note, err := SignCheckpoint(key, key.Origin(), int64(seq-1), root)
	if err != nil {
		return err
	}
	rec.Checkpoint = string(note)
	return nil
}

// rootWith is the root of the tree with lines added, without storing them.
func (t *Tree) rootWith(lines [][]byte) (tlog.Hash, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	base := tlog.StoredHashCount(t.n)
	r := &pending{store: t.hashes, base: base}
	n := t.n
	for _, line := range lines {
		hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(line), r)
		if err != nil {
			return tlog.Hash{}, err
		}
		r.hs = append(r.hs, hs...)
		n++
	}
	return tlog.TreeHash(n, r)
}

// treeAppend starts adding a write's lines to a signed log's tree, beside
// the write's fsync and on past it (the callers hear back meanwhile), so
// that the hashing takes no time of its own while the disk and the next
// group commit work. wait is called with the write's outcome: a failed
// write waits for the append and drops the tree (it must hold durable
// records only; it is rebuilt from the log for the next checkpoint).
// Whatever uses the tree next settles the append first (settleTree).
func (l *Log) treeAppend(lines [][]byte) (wait func(writeErr error)) {
	s := l.c.sign
	if s == nil || s.tree == nil {
		return func(error) {}
	}
	l.settleTree()
	if s.tree == nil {
		return func(error) {}
	}
	done := make(chan error, 1)
	go func(t *Tree) { done <- t.Append(lines...) }(s.tree)
	s.treeBusy = done
	return func(writeErr error) {
		if writeErr != nil {
			l.settleTree()
			l.dropTree()
		}
	}
}

// settleTree waits for the tree's append under way, if any, and drops the
// tree if it failed.
func (l *Log) settleTree() {
	s := l.c.sign
	if s == nil || s.treeBusy == nil {
		return
	}
	err := <-s.treeBusy
	s.treeBusy = nil
	if err != nil {
		l.o.Log.WithError(err).Warn("audit log: cannot store the Merkle tree's hashes; it is rebuilt from the log for the next checkpoint")
		l.dropTree()
	}
}

func (l *Log) dropTree() {
	if s := l.c.sign; s.tree != nil {
		s.tree.Close()
		s.tree = nil
	}
}

// stepTree is what the certification of the next epoch's key pins: the
// tree of every durable record, and the time the step starts. No record is
// written between it and the step's audit.epoch but the epoch's last
// checkpoint (evolveSigned). A tree
// store that cannot be opened costs checkpoints, not the epoch's end: the
// tree is then read from the log into memory, for this step only.
func (l *Log) stepTree() (CertTree, error) {
	l.settleTree()
	var t *Tree
	if err := l.openTree(); err == nil {
		t = l.c.sign.tree
	} else if errors.Is(err, errNotVouched) {
		return CertTree{}, err
	} else {
		files, ferr := Files(l.path)
		if ferr == nil {
			t, ferr = BuildTree(files)
		}
		if ferr != nil {
			return CertTree{}, fmt.Errorf("%w; and reading the log's tree into memory: %w", err, ferr)
		}
		if t.Size() != int64(l.c.seq) {
			return CertTree{}, fmt.Errorf("%w; and the log's files hold %d records, the log %d", err, t.Size(), l.c.seq)
		}
		if err := l.checkVouched(t); err != nil {
			return CertTree{}, err
		}
	}
	root, err := t.Root()
	if err != nil {
		return CertTree{}, err
	}
	return CertTree{Size: t.Size(), Root: root, Time: time.Now().UTC()}, nil
}

package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A signed log, under --pubkey (docs/proof.md): every record carries its
// signing epoch and a plain SHA-256 hash; each audit.epoch record certifies
// the next epoch's key (key_cert), signed by the current one, and each
// audit.checkpoint record holds a checkpoint of the tree of every record
// before it, signed by the key of the epoch it is in. verify walks the key
// chain from FILE.pub as the log goes, builds the tree as it goes (leaf i is
// the line of seq i+1), and checks every checkpoint against it.

// HeartbeatGap is a stretch of a running daemon's log with no checkpoint
// for longer than the heartbeat: no audit.stop or audit.restart between two
// checkpoints says the daemon ran, and a running daemon writes one at least
// every heartbeat. Records in it, and the daemon's silence, are vouched for
// by no signature of that time.
type HeartbeatGap struct {
	From, To         time.Time
	FromSeq, ToSeq   uint64
	File             string
	Line             int // of the checkpoint that ends the gap
	Heartbeat, Slack time.Duration
}

// signState is what verify keeps of a signed log.
type signState struct {
	origin string
	chain  []note.Verifier // the key of every epoch so far, by epoch
	// epochStart[e] is the first seq of epoch e (0 for epochs before the
	// log's start).
	epochStart []uint64

	tree    *Tree       // nil when the log does not start at seq 1: no tree without every leaf
	leaves  sync.Map    // *batch → []tlog.Hash, computed ahead on every core
	leaf    tlog.Hash   // the current line's
	pending []tlog.Hash // leaves not yet in tree

	last  *seenCheckpoint // the log's last checkpoint
	since *seenCheckpoint // the last checkpoint of the daemon's current run
}

type seenCheckpoint struct {
	time time.Time
	seq  uint64
	size int64
	root tlog.Hash
}

// signFields are the members of the records that sign or certify.
type signFields struct {
	Checkpoint string  `json:"checkpoint"`
	KeyCert    string  `json:"key_cert"`
	CleanStop  *bool   `json:"clean_stop"`
	LogEnd     *LogEnd `json:"log_end"`
}

func newSignState(pub note.Verifier) (*signState, error) {
	origin, epoch, err := splitKeyName(pub.Name())
	if err != nil {
		return nil, err
	}
	if epoch != 0 {
		return nil, fmt.Errorf("key %s is the key of epoch %d: verify starts from epoch 0's verifier key, FILE.pub as `hostpass audit keygen --sign FILE` wrote it", pub.Name(), epoch)
	}
	return &signState{origin: origin, chain: []note.Verifier{pub}}, nil
}

// leavesOf computes the leaf hash of every line of b (run ahead, on every
// core).
func (s *signState) leavesOf(b *batch) {
	hs := make([]tlog.Hash, len(b.lines))
	for i, l := range b.lines {
		hs[i] = tlog.RecordHash(l)
	}
	s.leaves.Store(b, hs)
}

// flush adds the pending leaves to the tree.
func (s *signState) flush() error {
	if s.tree == nil || len(s.pending) == 0 {
		return nil
	}
	err := s.tree.appendHashes(s.pending)
	s.pending = s.pending[:0]
	return err
}

// signedHash checks a signed log's record: its plain hash, its epoch.
func (v *verifier) signedHash(f chainFields, body []byte, claimed string) error {
	if lineHash(v.plain, body) != claimed {
		if v.sum.Records == 0 && v.sum.Checkpoints == 0 {
			return v.problem(f.Seq, Modified, "the first record does not match its hash, a SHA-256 in a signed log: the record was changed, or the log is sealed (its hashes are HMAC seals: verify it with --key INITIAL-KEY-FILE, not --pubkey)")
		}
		return v.problem(f.Seq, Modified, "the line does not match its hash")
	}
	if f.Epoch == nil {
		return v.problem(f.Seq, Unsigned, "the record has no epoch: every record of a signed log carries the epoch of the key in force; it was written by something other than hostpass's signing daemon (verify a log that is not signed without --pubkey)")
	}
	if err := v.epochOrder(f, "in"); err != nil {
		return err
	}
	s := v.sign
	for uint64(len(s.epochStart)) <= *f.Epoch {
		s.epochStart = append(s.epochStart, f.Seq)
	}
	return nil
}

// signed checks what a record of a signed log signs or certifies, once its
// chain has checked, and adds it to the tree.
func (v *verifier) signed(f chainFields, line []byte) error {
	s := v.sign
	var sf signFields
	switch f.Event {
	case Checkpoint, EpochEnd, Restart:
		if err := json.Unmarshal(line, &sf); err != nil {
			return v.problem(f.Seq, NotJSON, notRecord(err))
		}
	}
	switch f.Event {
	case Checkpoint:
		if err := v.checkpointRecord(f, sf); err != nil {
			return err
		}
	case EpochEnd:
		if err := v.keyCert(f, sf); err != nil {
			return err
		}
	case Restart:
		s.since = nil
		v.sum.Restarts++
		if sf.CleanStop == nil || !*sf.CleanStop {
			v.sum.UncleanRestarts++
		}
	case Stop:
		s.since = nil
	}
	if s.tree != nil {
		s.pending = append(s.pending, s.leaf)
		if len(s.pending) >= 1<<14 {
			return s.flush()
		}
	}
	return nil
}

// keyCert takes the next step of the key chain: an audit.epoch record's
// certification of the next epoch's key, signed by this epoch's.
func (v *verifier) keyCert(f chainFields, sf signFields) error {
	s := v.sign
	e := *f.Epoch
	if sf.KeyCert == "" {
		return v.problem(f.Seq, Unsigned, fmt.Sprintf("the audit.epoch record ending epoch %d has no key_cert: in a signed log it certifies epoch %d's key, and without it no later checkpoint can be checked; it was removed, or the log is sealed, not signed (verify a sealed log with --key)", e, e+1))
	}
	if uint64(len(s.chain)) != e+1 {
		return v.problem(f.Seq, BadCert, fmt.Sprintf("the audit.epoch record ending epoch %d comes after %d certifications: epoch %d's certification is the log's %d-th", e, len(s.chain)-1, e+1, e+1))
	}
	next, err := certifiedKey(s.chain[e], s.origin, e+1, []byte(sf.KeyCert))
	if err != nil {
		return v.problem(f.Seq, BadCert, err.Error()+"; FILE.pub vouches for no key after this point, so no checkpoint after it can be trusted")
	}
	s.chain = append(s.chain, next)
	v.sum.KeyCerts++
	return nil
}

// checkpointRecord opens an audit.checkpoint record's checkpoint with the
// key of its epoch, and checks it is the tree of every record before it.
func (v *verifier) checkpointRecord(f chainFields, sf signFields) error {
	s := v.sign
	e := *f.Epoch
	if sf.Checkpoint == "" {
		return v.problem(f.Seq, BadCheckpoint, "the audit.checkpoint record has no checkpoint member: hostpass writes the signed note there, whole")
	}
	size, root, err := s.open([]byte(sf.Checkpoint), e)
	if err != nil {
		return v.problem(f.Seq, BadCheckpoint, fmt.Sprintf("the checkpoint in epoch %d: %v", e, err))
	}
	if size != int64(f.Seq)-1 {
		return v.problem(f.Seq, BadCheckpoint, fmt.Sprintf("the checkpoint names a tree of %d records, but its record is seq %d: a checkpoint covers every record before its own, %d; it was moved or edited", size, f.Seq, f.Seq-1))
	}
	if s.tree != nil {
		if err := s.flush(); err != nil {
			return err
		}
		got, err := s.tree.Root()
		if err != nil {
			return err
		}
		if got != root {
			return v.problem(f.Seq, BadCheckpoint, fmt.Sprintf("the checkpoint of %d records (epoch %d) has root %s, but the records before it hash to %s: a record before it was changed, and the chain rebuilt after it", size, e, root, got))
		}
		v.sum.RootsChecked = true
	}
	cp := &seenCheckpoint{time: f.Time, seq: f.Seq, size: size, root: root}
	if h := v.o.Heartbeat; h > 0 && s.since != nil {
		slack := heartbeatSlack(h)
		if f.Time.Sub(s.since.time) > h+slack {
			v.sum.HeartbeatGaps = append(v.sum.HeartbeatGaps, HeartbeatGap{From: s.since.time, To: f.Time, FromSeq: s.since.seq, ToSeq: f.Seq,
				File: v.file, Line: v.lineNo, Heartbeat: h, Slack: slack})
		}
	}
	s.last, s.since = cp, cp
	v.sum.Checkpoints++
	v.sum.LastCheckpointSeq, v.sum.LastCheckpointSize = f.Seq, size
	return nil
}

// heartbeatSlack is how late a heartbeat may be before verify reports the
// gap: a tenth of it, at least a second (a timer fires late, a disk stalls).
func heartbeatSlack(h time.Duration) time.Duration {
	return max(h/10, time.Second)
}

// open opens a checkpoint that must be signed by the key of epoch e.
func (s *signState) open(msg []byte, e uint64) (int64, tlog.Hash, error) {
	signer, ok := s.signerEpoch(msg)
	switch {
	case ok && signer != e:
		genuine := ""
		if signer < uint64(len(s.chain)) {
			// Opened with its own key only to say whether it is genuine.
			genuine = " (a genuine signature)"
			if _, _, err := OpenCheckpoint(msg, note.VerifierList(s.chain[signer]), s.origin); err != nil {
				genuine = " (whose signature does not verify either)"
			}
		}
		return 0, tlog.Hash{}, fmt.Errorf("it is signed by the key of epoch %d%s, not by epoch %d's, the epoch its record is in: a checkpoint is signed by the key of the epoch it is written in, and whoever holds a later key can sign any tree", signer, genuine, e)
	case e >= uint64(len(s.chain)):
		return 0, tlog.Hash{}, fmt.Errorf("no certification of epoch %d's key precedes it (the key chain ends at epoch %d): the audit.epoch records that certify it are missing", e, len(s.chain)-1)
	}
	return OpenCheckpoint(msg, note.VerifierList(s.chain[e]), s.origin)
}

// signerEpoch reads, unverified, which epoch of this log's origin signed a
// note (the first such signature).
func (s *signState) signerEpoch(msg []byte) (uint64, bool) {
	_, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return 0, false
	}
	for _, sig := range unverified.Note.UnverifiedSigs {
		if origin, e, err := splitKeyName(sig.Name); err == nil && origin == s.origin {
			return e, true
		}
	}
	return 0, false
}

// epochOf is the epoch of the record at seq, as the log has it.
func (s *signState) epochOf(seq uint64) uint64 {
	e := uint64(0)
	for i, first := range s.epochStart {
		if first != 0 && first <= seq {
			e = uint64(i)
		}
	}
	return e
}

// signedEnd checks, once the whole log is read, that a signed log has a
// checkpoint, and proves the collected checkpoints against it.
func (v *verifier) signedEnd() error {
	s := v.sign
	if s == nil {
		return nil
	}
	v.sum.Signed = true
	if v.sum.Checkpoints == 0 {
		return &Problem{File: v.file, Line: v.lineNo, Seq: v.sum.LastSeq, Kind: Unsigned,
			Detail: "no audit.checkpoint record in the log, so no signature vouches for any record: a signing daemon writes one at start, every --checkpoint-records records and at stop; the log is not signed, or its checkpoints were removed (verify a log that is not signed without --pubkey)"}
	}
	if s.tree == nil {
		if len(v.o.Checkpoints) > 0 {
			return fmt.Errorf("--checkpoint refused: the log starts at seq %d (--start), and a checkpoint is proven against the tree of every record from seq 1; give the whole log", v.sum.FirstSeq)
		}
		return nil
	}
	return v.collected()
}

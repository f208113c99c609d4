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

// UnclosedEpoch is an epoch that ended without its last checkpoint: its
// audit.epoch follows no checkpoint of its own epoch. The writer puts one
// right before every audit.epoch, signed by the ending key, so that whoever
// holds a later key cannot rewrite the epoch's records; only a crash
// between the key file's step and that write leaves it out, and then the
// next start logs [the torn tail the crash left,] the certification, and
// audit.restart (a log from before the step was synchronous: the torn tail
// after the certification). The certification pins every record before
// FromSeq; FromSeq to Seq (the audit.epoch, and a torn tail) are vouched
// for by later epochs' checkpoints only.
type UnclosedEpoch struct {
	Epoch        uint64
	FromSeq, Seq uint64 // the records not covered by their epoch's key; Seq is the audit.epoch's
	File         string
	Line         int // of the audit.epoch
}

// signState is what verify keeps of a signed log.
type signState struct {
	origin string
	chain  []note.Verifier // the key of every epoch so far, by epoch
	// certTrees[i] is the tree epoch i+1's certification pins.
	certTrees []CertTree
	// epochStart[e] is the first seq of epoch e (0 for epochs before the
	// log's start).
	epochStart []uint64

	tree    *Tree       // nil when the log does not start at seq 1: no tree without every leaf
	leaves  sync.Map    // *batch → []tlog.Hash, computed ahead on every core
	leaf    tlog.Hash   // the current line's
	pending []tlog.Hash // leaves not yet in tree

	last  *seenCheckpoint // the log's last checkpoint
	since *seenCheckpoint // the last checkpoint of the daemon's current run

	closed   bool           // the record just read is a checkpoint (of its epoch: open checks that)
	recent   [2]seenRecord  // the two records before the current one, the later first
	unclosed *UnclosedEpoch // an audit.epoch that followed no checkpoint, until the record after it shows a crash
}

// seenRecord is what certTree needs of a record before an audit.epoch.
type seenRecord struct {
	seq   uint64
	event Event
	epoch uint64
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
	if u := s.unclosed; u != nil {
		if f.Event != Restart && f.Event != TornTail {
			// Named at the audit.epoch's line, not the record after it.
			return &Problem{File: u.File, Line: u.Line, Seq: u.Seq, Kind: Missing, Detail: fmt.Sprintf("the audit.epoch ending epoch %d follows no checkpoint of epoch %d: hostpass writes an epoch's last checkpoint, signed by its key, right before its audit.epoch, so that whoever holds a later key cannot rewrite the epoch's records; only a crash leaves it out, and then the next record is audit.restart or audit.torn_tail, not %s: the checkpoint was removed", u.Epoch, u.Epoch, f.Event)}
		}
		v.sum.UnclosedEpochs = append(v.sum.UnclosedEpochs, *u)
		s.unclosed = nil
	}
	v.datedAfterCert(f)
	closed := s.closed
	s.closed = false
	switch f.Event {
	case Checkpoint:
		if err := v.checkpointRecord(f, sf); err != nil {
			return err
		}
		s.closed = true
	case EpochEnd:
		if err := v.keyCert(f, sf); err != nil {
			return err
		}
		if !closed {
			// certTree pinned every record up to the step; only the
			// audit.epoch, and a torn tail before it, come after.
			from := uint64(s.certTrees[len(s.certTrees)-1].Size) + 1
			s.unclosed = &UnclosedEpoch{Epoch: *f.Epoch, FromSeq: from, Seq: f.Seq, File: v.file, Line: v.lineNo}
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
	s.recent[1], s.recent[0] = s.recent[0], seenRecord{seq: f.Seq, event: f.Event, epoch: *f.Epoch}
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
	next, at, err := certifiedKey(s.chain[e], s.origin, e+1, []byte(sf.KeyCert))
	if err != nil {
		return v.problem(f.Seq, BadCert, err.Error()+"; FILE.pub vouches for no key after this point, so no checkpoint after it can be trusted")
	}
	if err := v.certTree(f, at); err != nil {
		return err
	}
	s.chain, s.certTrees = append(s.chain, next), append(s.certTrees, at)
	v.sum.KeyCerts++
	v.sum.LastCertSize = at.Size
	return nil
}

// certTree checks the tree an audit.epoch's certification pins: the
// records durable when the key stepped, so at most those before the
// audit.epoch, at least those the previous certification pinned, and,
// signed by the retiring key, the log's own tree at that size. Without it
// the holder of a later key could rewrite every earlier epoch, keeping the
// certifications.
func (v *verifier) certTree(f chainFields, at CertTree) error {
	s := v.sign
	e := *f.Epoch
	if at.Size > int64(f.Seq)-1 {
		return v.problem(f.Seq, BadCert, fmt.Sprintf("the certification of epoch %d's key pins a tree of %d records, but its audit.epoch is seq %d: the key steps before its certification is logged, so it pins at most the %d records before it", e+1, at.Size, f.Seq, f.Seq-1))
	}
	prev := int64(0)
	if len(s.certTrees) > 0 {
		prev = s.certTrees[len(s.certTrees)-1].Size
	}
	if at.Size < prev {
		return v.problem(f.Seq, Rewritten, fmt.Sprintf("the certification of epoch %d's key pins a tree of %d records, fewer than epoch %d's certification pins, %d: a log only grows, so one of them pins rewritten history", e+1, at.Size, e, prev))
	}
	if s.tree == nil {
		v.sum.CertTreesUnchecked++
		return v.afterStep(f, at)
	}
	if err := s.flush(); err != nil {
		return err
	}
	root, err := s.tree.RootAt(at.Size)
	if err != nil {
		return err
	}
	if root != at.Root {
		return v.problem(f.Seq, Rewritten, fmt.Sprintf("the certification of epoch %d's key, signed by epoch %d's, pins the tree of the first %d records with root %s, but the log's first %d records hash to %s: records before seq %d were rewritten after epoch %d's key stepped, by whoever held a later key", e+1, e, at.Size, at.Root, at.Size, root, at.Size+1, e))
	}
	return v.afterStep(f, at)
}

// afterStep checks the records between the tree a certification pins and
// its audit.epoch (seqs at.Size+1 to f.Seq-1): the writer steps the key
// right before the epoch's last checkpoint and writes the audit.epoch
// next, so only that checkpoint, and the audit.torn_tail of a crash during
// the step, may lie there. Anything else is a record no key of its time
// vouches for: whoever holds the next key wrote it, and dropping the
// checkpoint makes the log look like a crash.
func (v *verifier) afterStep(f chainFields, at CertTree) error {
	s := v.sign
	e := *f.Epoch
	first, last := uint64(at.Size)+1, f.Seq-1
	if first > last {
		return nil
	}
	refuse := func(what string) error {
		return v.problem(f.Seq, Inserted, fmt.Sprintf("the certification of epoch %d's key pins a tree of %d records, but seq %d-%d lie between it and its audit.epoch (seq %d), %s: hostpass steps the key right before epoch %d's last checkpoint and writes the audit.epoch next, so only that checkpoint, signed by epoch %d's key, and the audit.torn_tail of a crash during the step may lie there; no key of their time vouches for these records: whoever holds a later key wrote them", e+1, at.Size, first, last, f.Seq, what, e, e))
	}
	if last-first >= uint64(len(s.recent)) {
		return refuse(fmt.Sprintf("%d records", last-first+1))
	}
	torn := false
	for i := len(s.recent) - 1; i >= 0; i-- {
		r := s.recent[i]
		if r.seq < first || r.seq > last {
			continue // before the log's start (--start): not read
		}
		switch {
		case r.event == Checkpoint && r.epoch == e && r.seq == first:
		case r.event == TornTail && !torn:
			torn = true
		default:
			return refuse(fmt.Sprintf("and seq %d is %s in epoch %d", r.seq, r.event, r.epoch))
		}
	}
	return nil
}

// Backdated is a record of epoch N >= 1 dated more than BackdateSlack
// before epoch N's key was made (the time its certification pins). Records
// are stamped with the wall clock, so a clock stepped back after a key step
// writes them in a genuine log; whoever holds key N can also write them.
// verify reports them (a bundle's claim is about time: check-proof
// refuses them).
type Backdated struct {
	File    string
	Line    int
	Seq     uint64
	Epoch   uint64
	Time    time.Time // the record's
	KeyMade time.Time // epoch Epoch's key, as its certification pins
}

// datedAfterCert notes a record of epoch N >= 1 dated before its epoch's
// key was made, less BackdateSlack: whoever holds key N can date a record
// as they like, and so can a clock stepped back.
func (v *verifier) datedAfterCert(f chainFields) {
	s := v.sign
	e := *f.Epoch
	if e == 0 || e > uint64(len(s.certTrees)) {
		return // epoch 0, or a key no certification precedes (open says so)
	}
	at := s.certTrees[e-1]
	if f.Time.Before(at.Time.Add(-BackdateSlack)) {
		v.sum.Backdated = append(v.sum.Backdated, Backdated{File: v.file, Line: v.lineNo, Seq: f.Seq, Epoch: e, Time: f.Time, KeyMade: at.Time})
	}
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
	if u := s.unclosed; u != nil {
		return &Problem{File: u.File, Line: u.Line, Seq: u.Seq, Kind: Missing,
			Detail: fmt.Sprintf("the log ends with the audit.epoch ending epoch %d, which follows no checkpoint of epoch %d: hostpass writes an epoch's last checkpoint, signed by its key, right before its audit.epoch; it was removed, or the log's tail was cut", u.Epoch, u.Epoch)}
	}
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

package audit

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// VerifyOptions: Key is the initial (epoch 0) sealing key, nil to leave seals
// unchecked. Anchors are seq → hash pairs known from outside the host (a
// syslog collector has every record): they reveal records cut off the end,
// which no chain can show by itself.
//
// A log must start at its genesis record (seq 1, genesis prev), and under
// Key that record must be sealed in epoch 0: whoever holds the daemon's key
// file can start a new log in its epoch, and only the start tells it from
// the real one. Start accepts a later start: the seq and hash of the first
// record present, known from elsewhere (the oldest files were removed).
//
// Pub is epoch 0's signing verifier key (FILE.pub): the log is signed
// (verify_sign.go), and Checkpoints, collected off the host, are proven
// against it (verify_collected.go). Heartbeat > 0 reports every stretch of
// a running daemon longer than it without a checkpoint.
//
// Progress, if set, is told of the lines checked as verify goes (read.go).
type VerifyOptions struct {
	Key         []byte
	Anchors     map[uint64]string
	Start       *Anchor
	Pub         note.Verifier
	Checkpoints []CollectedCheckpoint
	Heartbeat   time.Duration
	Progress    Progress
}

// Anchor is a record known from elsewhere: its seq and hash.
type Anchor struct {
	Seq  uint64
	Hash string
}

// Summary describes a log that verified.
type Summary struct {
	Files, Records    int
	FirstSeq, LastSeq uint64
	First, Last       time.Time
	LastHash          string
	Sealed            bool // some records are sealed
	SealsChecked      bool // and their seals were verified
	FirstEpoch        uint64
	LastEpoch         uint64
	TornTails         int
	// StartGiven: the log starts at FirstSeq because VerifyOptions.Start
	// says so; what came before it was not checked.
	StartGiven bool

	// Signed logs (VerifyOptions.Pub).
	Signed             bool
	KeyCerts           int // key certifications checked: epochs 1 to KeyCerts
	Checkpoints        int // checkpoint records: opened (Signed), or only counted
	LastCheckpointSeq  uint64
	LastCheckpointSize int64
	LastCertSize       int64     // records the last key certification pins
	RootsChecked       bool      // each checkpoint's root against the tree (false after --start: no tree)
	CertTreesUnchecked int       // key certifications whose pinned tree was not checked (after --start: no tree)
	TreeSize           int64     // the log's tree, when built
	TreeRoot           tlog.Hash // its root
	Collected          int       // collected checkpoints proven (each distinct one once)
	HeartbeatGaps      []HeartbeatGap
	UnclosedEpochs     []UnclosedEpoch // epochs a crash ended without their last checkpoint
	Restarts           int             // audit.restart records
	UncleanRestarts    int             // of which after a crash (the last stop was not clean)
	Backdated          []Backdated     // records dated before their epoch's key was made
}

// chainFields are the parts of a record verify needs.
type chainFields struct {
	Time      time.Time `json:"time"`
	Seq       uint64    `json:"seq"`
	Event     Event     `json:"event"`
	Epoch     *uint64   `json:"epoch"`
	NextEpoch *uint64   `json:"next_epoch"`
	Prev      string    `json:"prev"`
}

type verifier struct {
	o   VerifyOptions
	sum Summary

	file   string
	lineNo int

	next    uint64 // seq expected next; 0 before the first record
	prev    string // hash of the last record
	plain   hash.Hash
	sealed  bool    // a sealed record was seen
	epoch   uint64  // of the last sealed record
	ended   *uint64 // next_epoch of the last record, if it ended its epoch
	key     []byte  // the key of keyEpoch, derived from o.Key
	keyAt   uint64
	checked bool // a seal was checked

	// A seq ahead of the expected one is judged with the line after it:
	// the expected seq right after means a swap, anything else a gap.
	ahead *Problem
	seen  map[uint64]seenAt // anchored seqs: their hash and where they are

	view string // host_view of the last host.view record in this file

	sign *signState // a signed log's key chain and tree; nil without Pub
}

// seenAt is an anchored record as the log has it.
type seenAt struct {
	hash string
	file string
	line int
}

// Verify checks files, in chain order, as one log. It returns the summary,
// or the first Problem found (or an I/O error).
func Verify(files []string, o VerifyOptions) (Summary, error) {
	v := &verifier{o: o, prev: Genesis, plain: sha256.New(), seen: map[uint64]seenAt{}}
	if o.Key != nil {
		v.key = append([]byte(nil), o.Key...)
	}
	if o.Pub != nil {
		if o.Key != nil {
			return v.sum, errors.New("a sealing key and a signing verifier key: a log is sealed or signed, not both; give the one it has")
		}
		var err error
		if v.sign, err = newSignState(o.Pub); err != nil {
			return v.sum, err
		}
	}
	for _, f := range files {
		if err := v.verifyFile(f); err != nil {
			return v.sum, err
		}
	}
	if v.ahead != nil {
		return v.sum, v.gap()
	}
	if o.Key != nil && !v.checked {
		return v.sum, &Problem{File: v.file, Line: v.lineNo, Kind: Unsealed,
			Detail: "no record in the log is sealed, so the key checked nothing: verify it without --key, or find the sealed log"}
	}
	if err := v.signedEnd(); err != nil {
		return v.sum, err
	}
	v.sum.Files = len(files)
	v.sum.LastHash = v.prev
	v.sum.SealsChecked = v.sealed && v.o.Key != nil
	for seq, want := range o.Anchors {
		got, ok := v.seen[seq]
		switch {
		case !ok && seq > v.sum.LastSeq:
			return v.sum, &Problem{File: v.file, Line: v.lineNo, Seq: v.sum.LastSeq, Kind: Truncated,
				Detail: fmt.Sprintf("the log ends at seq %d but an anchor names seq %d: records were cut off the end", v.sum.LastSeq, seq)}
		case !ok:
			return v.sum, &Problem{File: files[0], Seq: seq, Kind: Missing,
				Detail: fmt.Sprintf("an --anchor names seq %d, but the log starts at seq %d%s: give anchors at or after the start", seq, v.sum.FirstSeq, asStartSays(v.sum.StartGiven))}
		case got.hash != want:
			return v.sum, &Problem{File: got.file, Line: got.line, Seq: seq, Kind: Modified,
				Detail: fmt.Sprintf("its hash is %s, but an --anchor names seq %d with hash %s: the record was changed (the chain rebuilt after it), or the anchor is wrong", got.hash, seq, want)}
		}
	}
	return v.sum, nil
}

// verifyFile checks one file of the log, continuing the chain from the
// file before it.
func (v *verifier) verifyFile(path string) error {
	v.file, v.lineNo, v.view = path, 0, ""
	work := func(b *batch) { b.invalid = firstInvalid(b.lines) }
	if s := v.sign; s != nil {
		work = func(b *batch) { b.invalid = firstInvalid(b.lines); s.leavesOf(b) }
	}
	err := eachBatchTold(path, work, v.batch, v.o.Progress)
	if err == errLongLine {
		// The lines read ahead of it are not counted: no line number.
		return &Problem{File: path, Kind: Modified, Detail: longLine}
	}
	return err
}

// longLine is the detail of a line over maxLine.
const longLine = "a line is longer than 16 MiB, the most verify reads as one record: hostpass never writes one"

// firstInvalid returns the index of the first line that is not JSON, or
// reads two ways, or -1. Checking JSON costs three times what the chain
// does, so it runs on the batches read ahead, on every core, while the
// chain is checked in order.
func firstInvalid(lines [][]byte) int {
	for i, l := range lines {
		if !json.Valid(l) || readsTwoWays(l) {
			return i
		}
	}
	return -1
}

func (v *verifier) batch(b *batch) error {
	invalid := b.invalid
	var leaves []tlog.Hash
	if v.sign != nil {
		hs, _ := v.sign.leaves.LoadAndDelete(b)
		leaves = hs.([]tlog.Hash)
	}
	for i, line := range b.lines {
		v.lineNo++
		if leaves != nil {
			v.sign.leaf = leaves[i]
		}
		if i == len(b.lines)-1 && !b.complete {
			_, seq, _, _ := fastHead(line) // 0 if the cut reaches into seq
			return v.problem(seq, Truncated, fmt.Sprintf("the last line is incomplete (%d bytes, no newline): a torn write or a cut file", len(line)))
		}
		if i == invalid {
			if json.Valid(line) {
				return v.readsTwoWays(line)
			}
			return v.problem(0, NotJSON, notJSON(json.Unmarshal(line, new(chainFields))))
		}
		if err := v.line(line); err != nil {
			return err
		}
	}
	return nil
}

func (v *verifier) line(line []byte) error {
	body, claimed, ok := splitHash(line)
	f, fast := fastFields(body)
	if !fast {
		f = chainFields{}
		if err := json.Unmarshal(line, &f); err != nil {
			return v.problem(0, NotJSON, notRecord(err))
		}
	}
	if !ok {
		return v.problem(f.Seq, Modified, `the line does not end with a "hash" member: every record ends with "hash", the SHA-256 or seal of the rest of its line`)
	}
	if v.ahead != nil {
		if f.Seq == v.next {
			p := v.ahead
			p.Kind = Reordered
			p.Detail = fmt.Sprintf("seq %d comes before seq %d (line %d)", p.Seq, f.Seq, v.lineNo)
			return p
		}
		return v.gap()
	}
	if v.next == 0 {
		if err := v.start(f, claimed); err != nil {
			return err
		}
		if v.sign != nil && f.Seq == 1 && f.Prev == Genesis {
			v.sign.tree = NewTree()
		}
	}
	switch {
	case v.next != 0 && f.Seq > v.next:
		v.ahead = v.problem(f.Seq, "", "")
		return nil
	case v.next != 0 && f.Seq < v.next:
		if f.Seq == v.next-1 {
			return v.problem(f.Seq, Inserted, fmt.Sprintf("seq %d appears twice (lines %d and %d): one of them was inserted", f.Seq, v.lineNo-1, v.lineNo))
		}
		return v.problem(f.Seq, Reordered, fmt.Sprintf("seq %d comes after seq %d", f.Seq, v.next-1))
	}
	if f.Prev != v.prev {
		return v.problem(f.Seq, ChainBroken, fmt.Sprintf("prev %s is not the hash of seq %d (%s): a record was replaced or inserted before it", short(f.Prev), f.Seq-1, short(v.prev)))
	}
	if err := v.seal(f, body, claimed); err != nil {
		return err
	}
	if err := v.checkView(f, line); err != nil {
		return err
	}
	if v.sign != nil {
		if err := v.signed(f, line); err != nil {
			return err
		}
	} else if f.Event == Checkpoint {
		v.sum.Checkpoints++ // unchecked: says the log is signed
	}
	if _, ok := v.o.Anchors[f.Seq]; ok {
		v.seen[f.Seq] = seenAt{claimed, v.file, v.lineNo}
	}
	v.prev, v.next = claimed, f.Seq+1
	v.sum.Records++
	if v.sum.FirstSeq == 0 {
		v.sum.FirstSeq, v.sum.First = f.Seq, f.Time
	}
	v.sum.LastSeq, v.sum.Last = f.Seq, f.Time
	if f.Event == TornTail {
		v.sum.TornTails++
	}
	return nil
}

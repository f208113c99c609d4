package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoints collected off the host (verify --checkpoint): each is opened
// with the log's key chain and proven, with a consistency proof, to be a
// prefix of the log's tree. That catches what no chain can: a tail cut off
// the log, and a history rewritten (and re-chained, and re-signed with the
// live key) after the checkpoint was sent.

// CollectedCheckpoint is a checkpoint found in a file, and where.
type CollectedCheckpoint struct {
	File string
	Line int // 0 for a file that is one note
	Note []byte
	// Sender: the HOSTNAME of the collector's message that held it (what
	// the collector recorded of who sent it); "" for a log's own line or
	// a note file.
	Sender string
}

// Bounds on what ReadCheckpoints reads: a note is a few hundred bytes; a
// collector's line holds one record, at most MaxRecord bytes, and its
// syslog header.
const (
	maxNoteFile       = 64 << 10
	maxCheckpointLine = 1 << 20
)

// checkpointForms says what a checkpoint file may hold.
const checkpointForms = "a checkpoint file holds one signed checkpoint note (origin, size, root hash, a blank line, signatures), or lines each holding an audit.checkpoint record: the log's own lines, or a syslog collector's (<PRI>1 TIMESTAMP HOST hostpass PID MSGID [hostpass@32473 ...] {record})"

// ReadCheckpoints reads the checkpoints in a file: one signed note, or
// every audit.checkpoint record in its lines (other lines are skipped: a
// collector's file holds every record).
func ReadCheckpoints(path string) ([]CollectedCheckpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	head, _ := r.Peek(len("hostpass/"))
	if string(head) == "hostpass/" {
		b, err := io.ReadAll(io.LimitReader(r, maxNoteFile+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxNoteFile {
			return nil, fmt.Errorf("%s: refused: it starts as a checkpoint note but is over %d KiB, and a note is a few hundred bytes; %s", path, maxNoteFile>>10, checkpointForms)
		}
		return []CollectedCheckpoint{{File: path, Note: b}}, nil
	}
	var out []CollectedCheckpoint
	for n := 1; ; n++ {
		line, err := readBoundedLine(r)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			break
		}
		if errors.Is(err, errLongLine) {
			return nil, fmt.Errorf("%s line %d: refused: the line is longer than %d MiB, and a checkpoint record is a few hundred bytes; %s", path, n, maxCheckpointLine>>20, checkpointForms)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if !bytes.Contains(line, []byte(`"audit.checkpoint"`)) {
			continue
		}
		c, err := checkpointInLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if c != nil {
			_, sender, _ := CollectedRecord(line)
			out = append(out, CollectedCheckpoint{File: path, Line: n, Note: c, Sender: sender})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no checkpoint in it: %s", path, checkpointForms)
	}
	return out, nil
}

// readBoundedLine reads one line, without its newline, of at most
// maxCheckpointLine bytes.
func readBoundedLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxCheckpointLine+1 {
			return nil, errLongLine
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), err
	}
}

// checkpointInLine finds the record in a line (alone, or after a syslog
// header) and returns its checkpoint, or nil if the record is not an
// audit.checkpoint.
func checkpointInLine(line []byte) ([]byte, error) {
	i := bytes.Index(line, []byte(`{"time":`))
	if i < 0 {
		return nil, fmt.Errorf(`refused: the line names audit.checkpoint but holds no record (none starts with {"time":); %s`, checkpointForms)
	}
	var rec struct {
		Event      Event  `json:"event"`
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.NewDecoder(bytes.NewReader(line[i:])).Decode(&rec); err != nil {
		return nil, fmt.Errorf("refused: the record in the line is not JSON (%v): cut by the collector? hostpass sends checkpoints whole, and a collector must keep messages of at least 8 KiB", err)
	}
	if rec.Event != Checkpoint {
		return nil, nil
	}
	if rec.Checkpoint == "" {
		return nil, errors.New(`refused: the audit.checkpoint record has no "checkpoint" member: hostpass writes the signed note there, whole`)
	}
	return []byte(rec.Checkpoint), nil
}

// collected proves each collected checkpoint against the log, once the
// whole log has been read.
func (v *verifier) collected() error {
	s := v.sign
	if err := s.flush(); err != nil {
		return err
	}
	n := s.tree.Size()
	root, err := s.tree.Root()
	if err != nil {
		return err
	}
	v.sum.TreeSize, v.sum.TreeRoot = n, root
	// A collector holds many copies of one checkpoint (TCP and UDP, a
	// resent message, the log's own lines): each is proven once.
	seen := map[string]bool{}
	for _, c := range v.o.Checkpoints {
		if seen[string(c.Note)] {
			continue
		}
		seen[string(c.Note)] = true
		if err := v.collectedOne(c, n, root); err != nil {
			return err
		}
		v.sum.Collected++
	}
	return nil
}

func (v *verifier) collectedOne(c CollectedCheckpoint, n int64, logRoot tlog.Hash) error {
	s := v.sign
	fail := func(kind ProblemKind, what string, args ...any) *Problem {
		detail := fmt.Sprintf(what, args...)
		if host := OriginHost(s.origin); c.Sender != "" && c.Sender != host {
			// Any host may send a line naming another's origin: say who did.
			detail = fmt.Sprintf("sent by %s (the collector's HOSTNAME for that line), not by %s, whose log this is: %s", c.Sender, host, detail)
		}
		return &Problem{File: c.File, Line: c.Line, Kind: kind, Detail: detail}
	}
	e, ok := s.signerEpoch(c.Note)
	if !ok {
		_, _, err := OpenCheckpoint(c.Note, note.VerifierList(s.chain[len(s.chain)-1]), s.origin)
		return fail(BadCheckpoint, "collected checkpoint: %v", err)
	}
	last := uint64(len(s.chain)) - 1
	if e > last {
		if claimed, ok := claimedSize(c.Note); ok && claimed < n {
			return fail(Rewritten, "collected checkpoint signed by the key of epoch %d, of %d records (unverified), but the log holds %d records and its key chain ends at epoch %d: the log's first %d records were rewritten with fewer epoch steps, so history before seq %d is not what the checkpoint was signed over, or the checkpoint is not this log's (its signature cannot be checked without the certification the log lacks)", e, claimed, n, last, claimed+1, claimed+2)
		}
		return fail(CutTail, "collected checkpoint signed by the key of epoch %d%s, but the log holds %d records and its key chain ends at epoch %d: the log's tail was cut (epoch %d on is missing), or its history was rewritten without epoch %d's step, or the checkpoint is not this log's (its signature cannot be checked without the certification the log lacks)", e, claimedText(c.Note), n, last, last+1, last+1)
	}
	size, root, err := OpenCheckpoint(c.Note, note.VerifierList(s.chain[e]), s.origin)
	if err != nil {
		return fail(BadCheckpoint, "collected checkpoint (epoch %d): %v", e, err)
	}
	if size >= n {
		// The checkpoint's own record, seq size+1, is in the log too.
		return fail(CutTail, "collected checkpoint of %d records (epoch %d), whose own record is seq %d, but the log holds %d: its last %d records (seq %d to %d) were cut off, or the files given are not the whole log", size, e, size+1, n, size+1-n, n+1, size+1)
	}
	if at := uint64(size) + 1; at <= uint64(n) && s.epochOf(at) != e {
		return fail(BadCheckpoint, "collected checkpoint of %d records is signed by the key of epoch %d, but the log's record seq %d, where that checkpoint is written, is in epoch %d: a checkpoint is signed by the key of the epoch it is written in, and whoever holds a later key can sign any tree", size, e, at, s.epochOf(at))
	}
	if size == 0 {
		if empty, _ := s.tree.RootAt(0); root != empty {
			return fail(Rewritten, "collected checkpoint of 0 records (epoch %d) has root %s, not the empty tree's", e, root)
		}
		return nil
	}
	bigSize, bigRoot, against := n, logRoot, fmt.Sprintf("the log's tree of all its %d records", n)
	if l := s.last; l != nil && l.size >= size {
		bigSize, bigRoot, against = l.size, l.root, fmt.Sprintf("the log's checkpoint at seq %d (%d records)", l.seq, l.size)
	}
	proof, err := s.tree.ProveTree(bigSize, size)
	if err != nil {
		return err
	}
	if err := CheckTree(proof, bigSize, bigRoot, size, root); err != nil {
		got, _ := s.tree.RootAt(size)
		return fail(Rewritten, "collected checkpoint of %d records (epoch %d) has root %s, but the log's first %d records hash to %s: %s does not extend it, so history before seq %d was rewritten since the checkpoint was sent (run verify without --checkpoint to find where the chain was rebuilt)", size, e, root, size, got, against, size+1)
	}
	return nil
}

// claimedSize reads, unverified, the size a checkpoint claims.
func claimedSize(msg []byte) (int64, bool) {
	text, _, _ := bytes.Cut(msg, []byte("\n\n"))
	_, rest, _ := bytes.Cut(text, []byte("\n"))
	tree, err := tlog.ParseTree(append([]byte(tlogOrigin), append(rest, '\n')...))
	if err != nil {
		return 0, false
	}
	return tree.N, true
}

// claimedText is ", of N records (unverified)", or "" if the checkpoint
// does not read as one.
func claimedText(msg []byte) string {
	n, ok := claimedSize(msg)
	if !ok {
		return ""
	}
	return fmt.Sprintf(", of %d records (unverified)", n)
}

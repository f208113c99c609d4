package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// A proof bundle (hostpass audit prove): one container's records, or one
// record, each with its inclusion proof in a checkpoint's tree, the signed
// checkpoint, and the key certifications from epoch 0 to the checkpoint's
// epoch. With FILE.pub alone, anyone checks it offline (CheckBundle): no
// log, no host. It goes into a ticket or a CIS 5.10 exception.

// BundleVersion is the format of Bundle this package writes and reads.
const BundleVersion = 1

// Bundle is a proof bundle, as JSON.
type Bundle struct {
	// Version is BundleVersion; CheckBundle refuses any other.
	Version int `json:"version"`
	// Origin is the log's origin, hostpass/<host>/<log ID>: FILE.pub's.
	Origin string `json:"origin"`
	// Container is what prove was asked for (a name or ID), or Seq the
	// record; one of them.
	Container string `json:"container,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
	// Records, in seq order, each with its proof in the tree of the first
	// checkpoint after it.
	Records []BundleRecord `json:"records"`
	// Checkpoints are those checkpoints, in seq order; the last covers
	// every record. Each record is proven under the first checkpoint after
	// it, signed by the key of the record's own epoch, not only under the
	// last: whoever takes the host in a later epoch holds that epoch's key
	// and can sign a tree with forged records of earlier epochs in it.
	Checkpoints []BundleCheckpoint `json:"checkpoints"`
	// KeyCerts are the key certifications of epochs 1 to the last
	// checkpoint's epoch, in order (the key_cert of each audit.epoch
	// record): they lead from FILE.pub to the keys that signed the
	// checkpoints.
	KeyCerts []string `json:"key_certs"`
}

// BundleCheckpoint is a checkpoint of the log: Note, the signed note whole,
// as the audit.checkpoint record at Seq holds it.
type BundleCheckpoint struct {
	Seq  uint64 `json:"seq"`
	Note string `json:"note"`
}

// BundleRecord is one record of a bundle.
type BundleRecord struct {
	// Leaf is the record's leaf index in the tree: its seq - 1.
	Leaf int64 `json:"leaf"`
	// Line is the record's line exactly as the log holds it, without the
	// newline: the leaf's data.
	Line string `json:"line"`
	// Checkpoint is the index in Bundle.Checkpoints of the checkpoint the
	// record is proven under: the first after it in the log.
	Checkpoint int `json:"checkpoint"`
	// Proof is the inclusion proof (RFC 6962, tlog.RecordProof) in that
	// checkpoint's tree, each hash in base64.
	Proof []string `json:"proof"`
}

// ProveQuery says what to prove: every record of a container (by name,
// full ID, or an ID prefix of 12 digits or more), or the record at Seq.
type ProveQuery struct {
	Container string
	Seq       uint64
}

// ContainerEvents are the records a container's bundle holds: its
// endpoints' lifecycle (attributed to it by endpoint.attribute), the
// endpoint.stale that ends one whose Leave Docker never sent, and its host
// mode.
var ContainerEvents = []Event{EndpointCreate, EndpointJoin, EndpointAttribute, EndpointLeave, EndpointStale, EndpointDelete, HostJoin, HostLeave}

// names reports whether c is the container q names: its name (with or
// without Docker's leading slash), its ID, or an ID prefix of 12 or more.
func names(c *Container, q string) bool {
	if c == nil || q == "" {
		return false
	}
	q = strings.TrimPrefix(q, "/")
	return c.ID == q || strings.TrimPrefix(c.Name, "/") == q || (len(q) >= 12 && strings.HasPrefix(c.ID, q))
}

// proveRecord is what Prove reads of a record.
type proveRecord struct {
	Seq        uint64     `json:"seq"`
	Event      Event      `json:"event"`
	EndpointID string     `json:"endpoint_id"`
	Container  *Container `json:"container"`
	Checkpoint string     `json:"checkpoint"`
	KeyCert    string     `json:"key_cert"`
	Epoch      *uint64    `json:"epoch"`
}

// wanted reports whether a line may matter to Prove, without decoding it.
func wanted(line []byte) bool {
	for _, e := range []string{`"event":"endpoint.`, `"event":"host.join"`, `"event":"host.leave"`, `"event":"audit.checkpoint"`, `"event":"audit.epoch"`} {
		if bytes.Contains(line, []byte(e)) {
			return true
		}
	}
	return false
}

// Prove makes the bundle for q from the log's files, in chain order, from
// its genesis record. It reads the log twice: once for the endpoints
// attributed to the container, the checkpoints and the certifications, once
// for the records.
func Prove(files []string, q ProveQuery) (*Bundle, error) {
	tree, err := BuildTree(files)
	if err != nil {
		return nil, err
	}
	endpoints := map[string]bool{}
	type cp struct {
		seq, epoch uint64
		size       int64
		note       string
	}
	var cps []cp
	var certs []string
	err = eachLineOf(files, func(line []byte) error {
		if !wanted(line) {
			return nil
		}
		var r proveRecord
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("record %s is not JSON (%v): run `hostpass audit verify`", line[:min(len(line), 40)], err)
		}
		switch {
		case r.Event == Checkpoint && r.Checkpoint != "":
			size := int64(-1)
			if s, ok := noteSize(r.Checkpoint); ok {
				size = s
			}
			e := uint64(0)
			if r.Epoch != nil {
				e = *r.Epoch
			}
			cps = append(cps, cp{r.Seq, e, size, r.Checkpoint})
		case r.Event == EpochEnd && r.KeyCert != "":
			certs = append(certs, r.KeyCert)
		case r.Event == EndpointAttribute && names(r.Container, q.Container):
			endpoints[r.EndpointID] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b := &Bundle{Version: BundleVersion, Container: q.Container, Seq: q.Seq, KeyCerts: []string{}}
	var seqs []uint64
	var lines []string
	err = eachLineOf(files, func(line []byte) error {
		seq, _ := lineSeq(line)
		if q.Seq != 0 {
			if seq == q.Seq {
				seqs, lines = append(seqs, seq), append(lines, string(line))
			}
			return nil
		}
		if !wanted(line) {
			return nil
		}
		var r proveRecord
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		if belongs(r.Event, r.EndpointID, r.Container, q.Container, endpoints) {
			seqs, lines = append(seqs, seq), append(lines, string(line))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(seqs) == 0 {
		if q.Seq != 0 {
			return nil, fmt.Errorf("no record seq %d in the log: it holds seq 1 to %d", q.Seq, tree.Size())
		}
		return nil, fmt.Errorf("no record names container %q: give its name or ID (12 hex digits or more) as `hostpass audit show` prints them", q.Container)
	}
	used := map[int]int{} // index in cps → index in b.Checkpoints
	for i, seq := range seqs {
		c := sort.Search(len(cps), func(j int) bool { return cps[j].size >= int64(seq) })
		if c == len(cps) {
			covered := "no checkpoint in the log"
			if n := len(cps); n > 0 {
				covered = fmt.Sprintf("the log's last checkpoint, at seq %d, covers seq 1 to %d", cps[n-1].seq, cps[n-1].size)
			}
			return nil, fmt.Errorf("record seq %d is not yet covered by a checkpoint (%s): wait for the next checkpoint, at most --checkpoint-interval (default 1m) while records arrive, or --heartbeat (default 5m) when idle, and prove again", seqs[len(seqs)-1], covered)
		}
		k, ok := used[c]
		if !ok {
			k = len(b.Checkpoints)
			used[c] = k
			b.Checkpoints = append(b.Checkpoints, BundleCheckpoint{Seq: cps[c].seq, Note: cps[c].note})
		}
		p, err := tree.ProveRecord(cps[c].size, LeafIndex(seq))
		if err != nil {
			return nil, err
		}
		r := BundleRecord{Leaf: LeafIndex(seq), Line: lines[i], Checkpoint: k, Proof: make([]string, len(p))}
		for j, h := range p {
			r.Proof[j] = h.String()
		}
		b.Records = append(b.Records, r)
	}
	last := cps[sort.Search(len(cps), func(j int) bool { return cps[j].size >= int64(seqs[len(seqs)-1]) })]
	if last.epoch > uint64(len(certs)) {
		return nil, fmt.Errorf("the checkpoint at seq %d is in epoch %d, but the log holds the certifications of epochs 1 to %d only: run `hostpass audit verify --pubkey`", last.seq, last.epoch, len(certs))
	}
	b.Origin, _, _ = strings.Cut(last.note, "\n")
	b.KeyCerts = append(b.KeyCerts, certs[:last.epoch]...)
	return b, nil
}

// belongs reports whether a record is one of container q's, given the
// endpoints attributed to q.
func belongs(event Event, endpoint string, c *Container, q string, endpoints map[string]bool) bool {
	switch event {
	case HostJoin, HostLeave:
		return names(c, q)
	case EndpointCreate, EndpointJoin, EndpointLeave, EndpointDelete:
		return endpoint != "" && endpoints[endpoint]
	case EndpointAttribute:
		return names(c, q)
	case EndpointStale: // it names its container, also one attributed before the log
		return (endpoint != "" && endpoints[endpoint]) || names(c, q)
	}
	return false
}

// noteSize reads, unverified, the tree size of a checkpoint's note.
func noteSize(note string) (int64, bool) {
	lines := strings.SplitN(note, "\n", 3)
	if len(lines) < 3 {
		return 0, false
	}
	var n int64
	if _, err := fmt.Sscanf(lines[1], "%d", &n); err != nil {
		return 0, false
	}
	return n, true
}

// eachLineOf calls fn with every complete line of files, in order.
func eachLineOf(files []string, fn func([]byte) error) error {
	for _, path := range files {
		err := eachBatch(path, func(*batch) {}, func(b *batch) error {
			for i, l := range b.lines {
				if i == len(b.lines)-1 && !b.complete {
					return nil
				}
				if err := fn(l); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

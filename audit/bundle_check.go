package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checking a bundle offline: the key chain from FILE.pub, the checkpoint's
// signature, every record's inclusion proof, and that every record is one
// the bundle is about. What it cannot prove: that the log holds no other
// record of the container (a bundle shows what was logged, never what was
// not; verify the log for that).

// MaxBundle bounds what ReadBundle reads: a container's records, each at
// most MaxRecord bytes, and their proofs.
const MaxBundle = 64 << 20

// Proven is what a bundle proves.
type Proven struct {
	Origin      string
	Host        string // the host's name, from the origin
	Checkpoints []ProvenCheckpoint
	Container   string // what the bundle is about, or ""
	Records     []Record
}

// ProvenCheckpoint is a checkpoint of a bundle, opened.
type ProvenCheckpoint struct {
	Seq    uint64 // of its record
	Size   int64  // of its tree
	Root   tlog.Hash
	Epoch  uint64 // of the key that signed it
	Signer string // that key's name
}

// ReadBundle reads a bundle, at most MaxBundle bytes, refusing members it
// does not know and anything after the object.
func ReadBundle(r io.Reader) (*Bundle, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBundle+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBundle {
		return nil, fmt.Errorf("bundle refused: it is over %d MiB; hostpass audit prove writes one container's records, a few KiB each", MaxBundle>>20)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out Bundle
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("bundle refused: it is not a proof bundle (%v): hostpass audit prove writes one JSON object, version %d", err, BundleVersion)
	}
	if dec.More() {
		return nil, errors.New("bundle refused: something follows its JSON object: a bundle is one object")
	}
	if out.Version != BundleVersion {
		return nil, fmt.Errorf("bundle refused: version %d; this hostpass reads version %d", out.Version, BundleVersion)
	}
	return &out, nil
}

// CheckBundle checks b with FILE.pub's key alone.
func CheckBundle(b *Bundle, pub note.Verifier) (*Proven, error) {
	origin, _, err := splitKeyName(pub.Name())
	if err != nil {
		return nil, err
	}
	if b.Origin != origin {
		return nil, fmt.Errorf("bundle refused: it is for log %s, and FILE.pub is the key of log %s", b.Origin, origin)
	}
	certs := make([][]byte, len(b.KeyCerts))
	for i, c := range b.KeyCerts {
		certs[i] = []byte(c)
	}
	chain, err := VerifyKeyChain(pub, certs)
	if err != nil {
		return nil, fmt.Errorf("bundle refused: its key certifications do not lead from FILE.pub: %w", err)
	}
	if len(b.Checkpoints) == 0 || len(b.Records) == 0 {
		return nil, errors.New("bundle refused: it holds no checkpoint or no record: hostpass audit prove writes both")
	}
	p := &Proven{Origin: origin, Host: hostOf(origin), Container: b.Container}
	s := &signState{origin: origin, chain: chain}
	for i, c := range b.Checkpoints {
		e, ok := s.signerEpoch([]byte(c.Note))
		if ok && e >= uint64(len(chain)) {
			return nil, fmt.Errorf("bundle refused: checkpoint %d is signed by the key of epoch %d, but the bundle's certifications lead to epoch %d only: a bundle holds the certifications up to its last checkpoint's epoch", i+1, e, len(chain)-1)
		}
		if !ok {
			e = uint64(len(chain) - 1) // OpenCheckpoint says why it does not open
		}
		size, root, err := OpenCheckpoint([]byte(c.Note), note.VerifierList(chain[e]), origin)
		if err != nil {
			return nil, fmt.Errorf("bundle refused: checkpoint %d: %w", i+1, err)
		}
		if c.Seq != uint64(size)+1 {
			return nil, fmt.Errorf("bundle refused: checkpoint %d covers %d records, so its record is seq %d, not seq %d as the bundle says", i+1, size, size+1, c.Seq)
		}
		if i > 0 && c.Seq <= p.Checkpoints[i-1].Seq {
			return nil, fmt.Errorf("bundle refused: checkpoint %d (seq %d) comes after seq %d: a bundle holds its checkpoints once each, in seq order", i+1, c.Seq, p.Checkpoints[i-1].Seq)
		}
		p.Checkpoints = append(p.Checkpoints, ProvenCheckpoint{Seq: c.Seq, Size: size, Root: root, Epoch: e, Signer: chain[e].Name()})
	}
	if last := p.Checkpoints[len(p.Checkpoints)-1]; last.Epoch != uint64(len(chain)-1) {
		return nil, fmt.Errorf("bundle refused: its last checkpoint is signed by the key of epoch %d, but its certifications lead to epoch %d's: a bundle holds the certifications up to its last checkpoint's epoch", last.Epoch, len(chain)-1)
	}
	var prev int64 = -1
	for i, r := range b.Records {
		if r.Checkpoint < 0 || r.Checkpoint >= len(p.Checkpoints) {
			return nil, fmt.Errorf("bundle refused: record %d (leaf %d) names checkpoint %d, and the bundle holds %d", i+1, r.Leaf, r.Checkpoint+1, len(p.Checkpoints))
		}
		c := p.Checkpoints[r.Checkpoint]
		rec, err := checkBundleRecord(r, c.Size, c.Root)
		if err != nil {
			return nil, fmt.Errorf("bundle refused: record %d (leaf %d): %w", i+1, r.Leaf, err)
		}
		if r.Leaf <= prev {
			return nil, fmt.Errorf("bundle refused: record %d (seq %d) comes after seq %d: a bundle holds each record once, in seq order", i+1, rec.Seq, prev+1)
		}
		prev = r.Leaf
		if err := ownEpoch(rec, c); err != nil {
			return nil, err
		}
		p.Records = append(p.Records, rec)
	}
	return p, p.about(b)
}

// checkBundleRecord checks one record's line against its proof.
func checkBundleRecord(r BundleRecord, size int64, root tlog.Hash) (Record, error) {
	var rec Record
	line := []byte(r.Line)
	if err := json.Unmarshal(line, &rec); err != nil {
		return rec, fmt.Errorf("its line is not a record (%v): the line was changed", err)
	}
	if LeafIndex(rec.Seq) != r.Leaf {
		return rec, fmt.Errorf("its line is seq %d, which is leaf %d, not %d", rec.Seq, LeafIndex(rec.Seq), r.Leaf)
	}
	if body, claimed, ok := splitHash(line); !ok || lineHash(sha256.New(), body) != claimed {
		return rec, fmt.Errorf("seq %d: the line does not match its hash: the line was changed", rec.Seq)
	}
	proof := make(tlog.RecordProof, len(r.Proof))
	for i, h := range r.Proof {
		var err error
		if proof[i], err = tlog.ParseHash(h); err != nil {
			return rec, fmt.Errorf("seq %d: proof hash %d is not a hash (%v): the proof was changed", rec.Seq, i+1, err)
		}
	}
	if err := CheckRecord(proof, size, root, rec.Seq, line); err != nil {
		return rec, fmt.Errorf("seq %d: the line and its proof do not lead to the checkpoint's root: the line or the proof was changed (%w)", rec.Seq, err)
	}
	return rec, nil
}

// about checks that every record is one the bundle is about: the record
// asked for, or one of the container's.
func (p *Proven) about(b *Bundle) error {
	if b.Seq != 0 {
		if len(p.Records) != 1 || p.Records[0].Seq != b.Seq {
			return fmt.Errorf("bundle refused: it is for record seq %d, and holds %d record(s), the first seq %d", b.Seq, len(p.Records), p.Records[0].Seq)
		}
		return nil
	}
	if b.Container == "" {
		return errors.New("bundle refused: it names neither a container nor a record seq: hostpass audit prove writes one of them")
	}
	endpoints := map[string]bool{}
	for _, r := range p.Records {
		if r.Event == EndpointAttribute && names(r.Container, b.Container) {
			endpoints[r.EndpointID] = true
		}
	}
	for _, r := range p.Records {
		if !belongs(r.Event, r.EndpointID, r.Container, b.Container, endpoints) {
			what := fmt.Sprintf("endpoint %s", short(r.EndpointID))
			if r.Container != nil {
				what = "container " + containerText(r.Container)
			}
			return fmt.Errorf("bundle refused: record seq %d (%s) is about %s, which no record of the bundle attributes to container %s: a bundle holds one container's records", r.Seq, r.Event, what, b.Container)
		}
	}
	return nil
}

// hostOf is the host part of an origin hostpass/<host>/<log ID>.
func hostOf(origin string) string {
	m := originRE.FindString(origin)
	if m == "" {
		return ""
	}
	rest := m[len("hostpass/"):]
	return rest[:len(rest)-17]
}

// containerText names a container: "web (c0ffee12c0ff)", or its short ID.
func containerText(c *Container) string {
	id := c.ID
	if len(id) > 12 {
		id = id[:12]
	}
	if c.Name == "" {
		return id
	}
	return fmt.Sprintf("%s (%s)", c.Name, id)
}

// Sessions describes what the records prove, one line each: every stretch
// in host mode (host.join to host.leave) and every attachment of an
// endpoint (endpoint.join to endpoint.leave), with the seqs.
func (p *Proven) Sessions() []string {
	at := func(r Record) string {
		return fmt.Sprintf("%s (seq %d %s)", r.Time.Format(time.RFC3339Nano), r.Seq, r.Event)
	}
	who := map[string]*Container{} // endpoint → container
	for _, r := range p.Records {
		if r.Event == EndpointAttribute && r.Container != nil {
			who[r.EndpointID] = r.Container
		}
	}
	var out []string
	open := map[string]Record{}
	var order []string
	for _, r := range p.Records {
		var key string
		switch r.Event {
		case HostJoin, HostLeave:
			if r.Container == nil {
				continue
			}
			key = "host " + r.Container.ID
		case EndpointJoin, EndpointLeave:
			key = "ep " + r.EndpointID
		default:
			continue
		}
		if r.Outcome != OK {
			continue
		}
		switch r.Event {
		case HostJoin, EndpointJoin:
			if _, ok := open[key]; !ok {
				order = append(order, key)
			}
			open[key] = r
		case HostLeave, EndpointLeave:
			j, ok := open[key]
			if !ok {
				continue
			}
			delete(open, key)
			out = append(out, p.session(j, who)+" from "+at(j)+" to "+at(r))
		}
	}
	for _, key := range order {
		if j, ok := open[key]; ok {
			out = append(out, p.session(j, who)+" from "+at(j)+", and this bundle holds no leave after it")
		}
	}
	return out
}

// session names what a join began.
func (p *Proven) session(j Record, who map[string]*Container) string {
	if j.Event == HostJoin {
		return fmt.Sprintf("container %s was in host mode on host %s", containerText(j.Container), j.Host)
	}
	c := "an unattributed container"
	if w := who[j.EndpointID]; w != nil {
		c = "container " + containerText(w)
	}
	return fmt.Sprintf("%s was attached to hostpass network %s (endpoint %s) on host %s", c, short12(j.NetworkID), short12(j.EndpointID), j.Host)
}

func short12(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ownEpoch checks that a record is proven under a checkpoint its own epoch
// signed: the first checkpoint after a record is signed by the key of the
// record's epoch (an epoch's last checkpoint comes before its key steps),
// or of the next epoch for the records that end an epoch (its last
// checkpoint and audit.epoch). Whoever takes the host in a later epoch
// holds that epoch's key and can sign any tree, forged records and all: a
// later checkpoint proves nothing about an earlier epoch's records.
func ownEpoch(rec Record, c ProvenCheckpoint) error {
	if rec.Epoch == nil {
		return fmt.Errorf("bundle refused: record seq %d has no epoch: every record of a signed log carries one", rec.Seq)
	}
	allowed := *rec.Epoch
	if rec.Event == EpochEnd || rec.Event == Checkpoint {
		allowed++
	}
	if c.Epoch > allowed {
		return fmt.Errorf("bundle refused: record seq %d is in epoch %d, but it is proven under a checkpoint signed by the key of epoch %d: the first checkpoint after a record is signed by its epoch's key, and whoever holds a later key can sign any tree, forged records and all; ask for the bundle hostpass audit prove writes, each record under the first checkpoint after it", rec.Seq, *rec.Epoch, c.Epoch)
	}
	return nil
}

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
	chain, trees, err := walkKeyChain(pub, certs)
	if err != nil {
		return nil, fmt.Errorf("bundle refused: its key certifications do not lead from FILE.pub: %w", err)
	}
	if len(b.Checkpoints) == 0 || len(b.Records) == 0 {
		return nil, errors.New("bundle refused: it holds no checkpoint or no record: hostpass audit prove writes both")
	}
	p := &Proven{Origin: origin, Host: OriginHost(origin), Container: b.Container}
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
		if err := afterCert(rec, r.Leaf, c, trees); err != nil {
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
// endpoint (endpoint.join to endpoint.leave, or to the ended_at of the
// endpoint.stale that ends one whose Leave Docker never sent, as audit
// sessions dates it), with the seqs. A leave ends
// the session of its own join only: an endpoint's (endpoint_id), or a
// container's run in host mode (the started_at both records carry, or the
// leave's time less its host_mode_seconds). A leave without its join, or a
// join without its leave, is said to be so, never joined to another: a
// bundle with a leave and a join left out must not read as one long
// session.
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
	var out, joins []Record
	var lines []string
	open := map[string][]Record{}     // key → its joins not yet ended, in order
	otherLeave := map[uint64]Record{} // join seq → the first leave after it of its key that was not its own
	staled := map[string]*Record{}    // key → the endpoint.stale that ended its session
	for _, r := range p.Records {
		key := SessionKey(r)
		if key == "" {
			continue
		}
		switch r.Event {
		case HostJoin, EndpointJoin:
			open[key] = append(open[key], r)
			joins = append(joins, r)
		case HostLeave, EndpointLeave, EndpointStale:
			js := open[key]
			own := -1
			for i := len(js) - 1; i >= 0 && own < 0; i-- {
				if Ends(r, js[i]) {
					own = i
				}
			}
			if own < 0 && r.Event == EndpointLeave && staled[key] != nil {
				lines = append(lines, p.leaveAfterStale(r, *staled[key], who))
				continue
			}
			if own < 0 {
				for _, j := range js {
					if _, ok := otherLeave[j.Seq]; !ok {
						otherLeave[j.Seq] = r
					}
				}
				lines = append(lines, p.leaveAlone(r, who))
				continue
			}
			j := js[own]
			open[key] = append(js[:own:own], js[own+1:]...)
			out = append(out, j)
			if r.Event == EndpointStale {
				staled[key] = &r
				lines = append(lines, p.session(j, who)+" from "+at(j)+" to "+staleEnd(j, r))
				continue
			}
			lines = append(lines, p.session(j, who)+" from "+at(j)+" to "+at(r))
		}
	}
	ended := map[uint64]bool{}
	for _, j := range out {
		ended[j.Seq] = true
	}
	for _, j := range joins {
		if ended[j.Seq] {
			continue
		}
		if l, ok := otherLeave[j.Seq]; ok {
			lines = append(lines, fmt.Sprintf("%s from %s; this bundle holds no leave of that session: the %s after it (seq %d) ends another, so its own leave is not in the bundle", p.session(j, who), at(j), l.Event, l.Seq))
			continue
		}
		lines = append(lines, p.session(j, who)+" from "+at(j)+", and this bundle holds no leave after it")
	}
	return lines
}

// SessionKey is what ties a join to its leave: the endpoint of an
// endpoint.join, endpoint.leave or endpoint.stale, the container of a host.join or
// host.leave; "" for any other record, and for a refused call, which
// began or ended nothing. audit prove's bundles and audit sessions pair
// records by it, and by Ends.
func SessionKey(r Record) string {
	if r.Outcome != OK {
		return ""
	}
	switch r.Event {
	case HostJoin, HostLeave:
		if r.Container != nil {
			return "host " + r.Container.ID
		}
	case EndpointJoin, EndpointLeave:
		return "ep " + r.EndpointID
	case EndpointStale:
		if r.Via == nil { // a sharer's: the owner's own record ends the session
			return "ep " + r.EndpointID
		}
	}
	return ""
}

// Ends says whether leave ends the session join began, given the same
// SessionKey: an endpoint's leave ends its join; a container's host.leave
// ends the run the host.join began (leaveEndsRun), not an earlier or later run
// of the same container.
func Ends(leave, join Record) bool {
	return leave.Event == EndpointLeave || leave.Event == EndpointStale || leaveEndsRun(join, leave)
}

// JoinsOfOneRun says whether two host.join records are of one run of
// their container: a reconciling watcher (after a restart) records a
// running container's host.join again.
func JoinsOfOneRun(a, b Record) bool {
	as := a.Time
	if a.Container.StartedAt != nil {
		as = *a.Container.StartedAt
	}
	bs := b.Time
	if b.Container.StartedAt != nil {
		bs = *b.Container.StartedAt
	}
	d := bs.Sub(as)
	return d >= -sameRunSlack && d <= sameRunSlack
}

// sameRunSlack is how far apart the starts of a host.join and its
// host.leave may be: the join records the time of Docker's connect event
// when the container's process has not started yet, and the leave the
// run's start, a moment later.
const sameRunSlack = time.Minute

// leaveEndsRun says whether host.leave l ends the session host.join j began: the
// run each says it began (started_at; for the join, its time when it has
// none; for the leave, its time less host_mode_seconds) are the same,
// within sameRunSlack.
func leaveEndsRun(j, l Record) bool {
	js := j.Time
	if j.Container.StartedAt != nil {
		js = *j.Container.StartedAt
	}
	ls, ok := LeaveStart(l)
	if !ok {
		return false
	}
	d := ls.Sub(js)
	return d >= -sameRunSlack && d <= sameRunSlack
}

// LeaveStart is when the run a host.leave ends began, by its record
// (started_at, or its time less host_mode_seconds).
func LeaveStart(l Record) (time.Time, bool) {
	switch {
	case l.Container != nil && l.Container.StartedAt != nil: // an endpoint.leave has no container
		return *l.Container.StartedAt, true
	case l.HostModeSeconds != nil:
		return l.Time.Add(-time.Duration(*l.HostModeSeconds * float64(time.Second))), true
	}
	return time.Time{}, false
}

// leaveAlone describes a leave whose join the bundle does not hold.
func (p *Proven) leaveAlone(l Record, who map[string]*Container) string {
	at := fmt.Sprintf("%s (seq %d %s)", l.Time.Format(time.RFC3339Nano), l.Seq, l.Event)
	if l.Event == HostLeave {
		began := "whose start its record does not give"
		if s, ok := LeaveStart(l); ok {
			began = "that its record says began at " + s.Format(time.RFC3339Nano)
		}
		return fmt.Sprintf("container %s left host mode on host %s at %s, ending a session %s; this bundle holds no host.join of that session", containerText(l.Container), l.Host, at, began)
	}
	c := "an unattributed container"
	if w := who[l.EndpointID]; w != nil {
		c = "container " + containerText(w)
	} else if l.Event == EndpointStale && l.Container != nil {
		c = "container " + containerText(l.Container)
	}
	if l.Event == EndpointStale {
		at = staleEnd(Record{}, l)
	}
	return fmt.Sprintf("%s left hostpass network %s (endpoint %s) on host %s at %s; this bundle holds no endpoint.join of that endpoint", c, short12(l.NetworkID), short12(l.EndpointID), l.Host, at)
}

// staleEnd says when the endpoint.stale r ended the session join began:
// at its ended_at, Docker's end of the container (Docker sent no Leave,
// the record was written later), as audit sessions dates it.
func staleEnd(join, r Record) string {
	rec := fmt.Sprintf("seq %d endpoint.stale, written at %s: Docker sent no Leave for the endpoint", r.Seq, r.Time.Format(time.RFC3339Nano))
	switch {
	case r.EndedAt == nil:
		return fmt.Sprintf("an unknown time (%s, and no longer said when the container stopped)", rec)
	case r.EndedAt.Before(join.Time):
		return fmt.Sprintf("an unknown time (%s; its ended_at %s is earlier than the join: the host's clock stepped back)", rec, r.EndedAt.Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("%s (the ended_at of %s)", r.EndedAt.Format(time.RFC3339Nano), rec)
}

// leaveAfterStale says that an endpoint.leave came after the
// endpoint.stale that already ended its endpoint's session: Docker's
// Leave after all, which ends nothing more.
func (p *Proven) leaveAfterStale(l, stale Record, who map[string]*Container) string {
	c := "an unattributed container"
	if w := who[l.EndpointID]; w != nil {
		c = "container " + containerText(w)
	}
	return fmt.Sprintf("%s left hostpass network %s (endpoint %s) on host %s at %s (seq %d endpoint.leave): Docker's Leave after all, after the endpoint.stale (seq %d) that ended that session", c, short12(l.NetworkID), short12(l.EndpointID), l.Host, l.Time.Format(time.RFC3339Nano), l.Seq, stale.Seq)
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
// record's epoch (an epoch's last checkpoint is written with its audit.epoch),
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

// BackdateSlack is how much earlier than its epoch's key step a record
// proven under that epoch's checkpoint may be dated: records kept in
// memory while the log was unwritable are written later, with the time
// they happened, and a clock may step back a little.
const BackdateSlack = 5 * time.Minute

// afterCert checks a record against what the certification of the key
// that signed its checkpoint pins (epoch c.Epoch >= 1): that key's holder
// can sign any tree, but the retiring key signed the tree of the records
// durable when the key stepped, and the time; so a record vouched for by
// the new key alone must come after that tree, and not be dated before
// the step.
func afterCert(rec Record, leaf int64, c ProvenCheckpoint, trees []CertTree) error {
	if c.Epoch == 0 {
		return nil
	}
	at := trees[c.Epoch]
	if leaf < at.Size {
		return fmt.Errorf("bundle refused: record seq %d is proven under a checkpoint of epoch %d, but epoch %d's key certification pins the tree of the first %d records, signed by epoch %d's key: whoever holds epoch %d's key can only add records after seq %d, so that key's checkpoint vouches for no earlier record; ask for the bundle hostpass audit prove writes, each record under the first checkpoint after it", rec.Seq, c.Epoch, c.Epoch, at.Size, c.Epoch-1, c.Epoch, at.Size)
	}
	if rec.Time.Before(at.Time.Add(-BackdateSlack)) {
		return fmt.Errorf("bundle refused: record seq %d is dated %s, but it is proven under a checkpoint of epoch %d, whose key was made at %s (its certification, signed by epoch %d's key, says so): whoever holds epoch %d's key can date a record as they like, and a record is written at most %s after its time; it is backdated", rec.Seq, rec.Time.UTC().Format(time.RFC3339Nano), c.Epoch, at.Time.UTC().Format(time.RFC3339Nano), c.Epoch-1, c.Epoch, BackdateSlack)
	}
	return nil
}

package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"path/filepath"
	"strings"
	"testing"
)

const (
	webID = "c0ffee12c0ffee12c0ffee12c0ffee12c0ffee12c0ffee12c0ffee12c0ffee12"
	dbID  = "d00dfeedd00dfeedd00dfeedd00dfeedd00dfeedd00dfeedd00dfeedd00dfeed"
)

// story is a signed log where container web is attached to a hostpass
// network by endpoint ep1 and container db runs in host mode, with other
// records between, a checkpoint every 4 records and an epoch every 6.
func story(t testing.TB) (*handLog, string) {
	l := newHandLog(t)
	l.checkpoint(CheckpointStart)
	ep := func(e Event, id string) Record {
		return Record{Event: e, Outcome: OK, Driver: "hostpass", NetworkID: "net1", EndpointID: id}
	}
	web := &Container{ID: webID, Name: "web", Image: "busybox"}
	db := &Container{ID: dbID, Name: "db"}
	attr := ep(EndpointAttribute, "ep1")
	attr.Container = web
	recs := []Record{
		ep(EndpointCreate, "ep1"), ep(EndpointJoin, "ep1"), ep(EndpointCreate, "ep2"), attr,
		{Event: HostJoin, Outcome: OK, Container: db},
		ep(EndpointJoin, "ep2"), ep(EndpointLeave, "ep1"), ep(EndpointDelete, "ep1"),
		{Event: HostLeave, Outcome: OK, Container: db},
	}
	for _, r := range recs {
		l.add(r)
		if l.seq%6 == 0 {
			l.stepEpoch()
		} else if l.seq%4 == 0 {
			l.checkpoint(CheckpointRecords)
		}
	}
	l.checkpoint(CheckpointStop)
	l.add(Record{Event: Stop, Outcome: OK})
	return l, l.write(t.TempDir())
}

func prove(t *testing.T, log string, q ProveQuery) *Bundle {
	t.Helper()
	b, err := Prove([]string{log}, q)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProveContainer(t *testing.T) {
	l, log := story(t)
	b := prove(t, log, ProveQuery{Container: "web"})
	var seqs []uint64
	for _, r := range b.Records {
		seqs = append(seqs, uint64(r.Leaf)+1)
	}
	if fmt.Sprint(seqs) != "[2 3 6 11 12]" {
		t.Errorf("records %v, want seqs 2 3 6 11 12 (ep1's create, join, attribute, leave, delete)", seqs)
	}
	p, err := CheckBundle(b, l.pub())
	if err != nil {
		t.Fatal(err)
	}
	// seq 2 and 3 under the checkpoint at seq 5, seq 6 under the one at
	// seq 7 (epoch 0's last), seq 11 and 12 under the one at 13 (epoch 1).
	if p.Host != "node1" || fmt.Sprint(p.Checkpoints) != fmt.Sprintf("[%v %v %v]", ck(t, l, 5, 0), ck(t, l, 7, 0), ck(t, l, 13, 1)) || len(b.KeyCerts) != 1 {
		t.Errorf("proven %+v, %d certs", p.Checkpoints, len(b.KeyCerts))
	}
	if fmt.Sprint(b.Records[0].Checkpoint, b.Records[1].Checkpoint, b.Records[2].Checkpoint, b.Records[3].Checkpoint, b.Records[4].Checkpoint) != "0 0 1 2 2" {
		t.Errorf("records' checkpoints: %+v", b.Records)
	}
	want := []string{"container web (c0ffee12c0ff) was attached to hostpass network net1 (endpoint ep1) on host node1 from 2026-11-27T10:00:02Z (seq 3 endpoint.join) to 2026-11-27T10:00:10Z (seq 11 endpoint.leave)"}
	if got := p.Sessions(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sessions\n%q\nwant\n%q", got, want)
	}

	db := prove(t, log, ProveQuery{Container: dbID[:12]})
	p, err = CheckBundle(db, l.pub())
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"container db (d00dfeedd00d) was in host mode on host node1 from 2026-11-27T10:00:08Z (seq 9 host.join) to 2026-11-27T10:00:14Z (seq 15 host.leave)"}
	if got := p.Sessions(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sessions\n%q\nwant\n%q", got, want)
	}

	one := prove(t, log, ProveQuery{Seq: 7})
	if _, err := CheckBundle(one, l.pub()); err != nil || len(one.Records) != 1 || one.Records[0].Leaf != 6 || len(one.Checkpoints) != 1 || one.Checkpoints[0].Seq != 13 {
		t.Errorf("seq 7: %v, %+v", err, one)
	}
}

func TestProveRefused(t *testing.T) {
	_, log := story(t)
	for _, tc := range []struct {
		q    ProveQuery
		want string
	}{
		{ProveQuery{Container: "nobody"}, `no record names container "nobody": give its name or ID (12 hex digits or more) as ` + "`hostpass audit show`" + ` prints them`},
		{ProveQuery{Seq: 99}, "no record seq 99 in the log: it holds seq 1 to 17"},
		{ProveQuery{Seq: 17}, "record seq 17 is not yet covered by a checkpoint (the log's last checkpoint, at seq 16, covers seq 1 to 15): wait for the next checkpoint, at most --checkpoint-interval (default 1m) while records arrive, or --heartbeat (default 5m) when idle, and prove again"},
	} {
		_, err := Prove([]string{log}, tc.q)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v: got %v\nwant %s", tc.q, err, tc.want)
		}
	}
}

// flip flips one byte of s at i.
func flip(s string, i int) string {
	b := []byte(s)
	b[i] ^= 0x01
	return string(b)
}

func TestCheckBundleRefused(t *testing.T) {
	l, log := story(t)
	other, _ := story(t)
	// db's bundle: seq 9 and 15 under the checkpoint at seq 16 (epoch 2).
	good := prove(t, log, ProveQuery{Container: "db"})
	// ep2's join (seq 10, epoch 1) proven under the same checkpoint as
	// seq 9 (seq 13's): a genuine record, and proof, of another container.
	webJoin := BundleRecord{Leaf: 9, Line: string(l.lines[9])}
	if p, err := l.tree.ProveRecord(12, 9); err != nil {
		t.Fatal(err)
	} else {
		for _, h := range p {
			webJoin.Proof = append(webJoin.Proof, h.String())
		}
	}
	copyOf := func() *Bundle {
		var b Bundle
		j, _ := json.Marshal(good)
		json.Unmarshal(j, &b)
		return &b
	}
	for _, tc := range []struct {
		name   string
		damage func(b *Bundle)
		want   string
	}{
		{"flipped byte in a line", func(b *Bundle) {
			b.Records[0].Line = strings.Replace(b.Records[0].Line, `"name":"db"`, `"name":"dc"`, 1)
		}, "bundle refused: record 1 (leaf 8): seq 9: the line does not match its hash: the line was changed"},
		{"line re-hashed", func(b *Bundle) {
			line := strings.Replace(b.Records[1].Line, `"outcome":"ok"`, `"outcome":"ko"`, 1)
			body, _, _ := splitHash([]byte(line))
			b.Records[1].Line = string(body) + hashMember + lineHash(sha256New(), body) + `"}`
		}, "bundle refused: record 2 (leaf 14): seq 15: the line and its proof do not lead to the checkpoint's root: the line or the proof was changed"},
		{"flipped byte in a proof", func(b *Bundle) { b.Records[0].Proof[1] = flip(b.Records[0].Proof[1], 3) },
			"bundle refused: record 1 (leaf 8): seq 9: the line and its proof do not lead to the checkpoint's root: the line or the proof was changed"},
		{"proof not base64", func(b *Bundle) { b.Records[0].Proof[0] = "!" + b.Records[0].Proof[0][1:] },
			"bundle refused: record 1 (leaf 8): seq 9: proof hash 1 is not a hash (malformed hash): the proof was changed"},
		{"flipped byte in the checkpoint", func(b *Bundle) {
			i := strings.Index(b.Checkpoints[1].Note, "\n") + 1
			b.Checkpoints[1].Note = flip(b.Checkpoints[1].Note, i)
		}, "bundle refused: checkpoint 2: checkpoint refused: the signature by " + l.keys[2].Name() + fmt.Sprintf("+%08x", l.keys[2].KeyHash()) + " does not verify: its origin, size or root hash was changed after signing"},
		{"flipped byte in a certification", func(b *Bundle) {
			b.KeyCerts[1] = strings.Replace(b.KeyCerts[1], "epoch 2\n", "epoch 3\n", 1)
		}, "bundle refused: its key certifications do not lead from FILE.pub: key certification of epoch 2: the signature by " + l.keys[1].Name() + " does not verify: the certification was changed after signing"},
		{"a certification left out", func(b *Bundle) { b.KeyCerts = b.KeyCerts[:1] },
			"bundle refused: checkpoint 2 is signed by the key of epoch 2, but the bundle's certifications lead to epoch 1 only: a bundle holds the certifications up to its last checkpoint's epoch"},
		{"a certification too many", func(b *Bundle) { b.Checkpoints = b.Checkpoints[:1]; b.Records = b.Records[:1] },
			"bundle refused: its last checkpoint is signed by the key of epoch 1, but its certifications lead to epoch 2's: a bundle holds the certifications up to its last checkpoint's epoch"},
		{"a checkpoint named that is not there", func(b *Bundle) { b.Records[1].Checkpoint = 5 },
			"bundle refused: record 2 (leaf 14) names checkpoint 6, and the bundle holds 2"},
		{"checkpoints out of order", func(b *Bundle) { b.Checkpoints[0], b.Checkpoints[1] = b.Checkpoints[1], b.Checkpoints[0] },
			"bundle refused: checkpoint 2 (seq 13) comes after seq 16: a bundle holds its checkpoints once each, in seq order"},
		{"another log's", func(b *Bundle) { b.Origin = other.origin },
			"bundle refused: it is for log " + other.origin + ", and FILE.pub is the key of log " + l.origin},
		{"a record swapped for another proven record", func(b *Bundle) { b.Records[0] = webJoin },
			"bundle refused: record seq 10 (endpoint.join) is about endpoint ep2, which no record of the bundle attributes to container db: a bundle holds one container's records"},
		{"records out of order", func(b *Bundle) { b.Records[0], b.Records[1] = b.Records[1], b.Records[0] },
			"bundle refused: record 2 (seq 9) comes after seq 15: a bundle holds each record once, in seq order"},
		{"leaf changed", func(b *Bundle) { b.Records[0].Leaf = 5 },
			"bundle refused: record 1 (leaf 5): its line is seq 9, which is leaf 8, not 5"},
		{"checkpoint seq changed", func(b *Bundle) { b.Checkpoints[1].Seq = 3 },
			"bundle refused: checkpoint 2 covers 15 records, so its record is seq 16, not seq 3 as the bundle says"},
		{"no record", func(b *Bundle) { b.Records = nil }, "bundle refused: it holds no checkpoint or no record: hostpass audit prove writes both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := copyOf()
			tc.damage(b)
			_, err := CheckBundle(b, l.pub())
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
	// The same bundle checked with another log's key.
	if _, err := CheckBundle(good, other.pub()); err == nil || !strings.Contains(err.Error(), "FILE.pub is the key of log "+other.origin) {
		t.Errorf("another key: %v", err)
	}
}

func TestReadBundleRefused(t *testing.T) {
	_, log := story(t)
	good, _ := json.Marshal(prove(t, log, ProveQuery{Container: "web"}))
	for _, tc := range []struct{ name, text, want string }{
		{"huge", `{"version":1,"origin":"` + strings.Repeat("x", MaxBundle) + `"}`, "bundle refused: it is over 64 MiB; hostpass audit prove writes one container's records, a few KiB each"},
		{"not JSON", "hostpass bundle", "bundle refused: it is not a proof bundle (invalid character 'h' looking for beginning of value): hostpass audit prove writes one JSON object, version 1"},
		{"unknown member", strings.Replace(string(good), `"version":1`, `"version":1,"extra":1`, 1), `bundle refused: it is not a proof bundle (json: unknown field "extra"): hostpass audit prove writes one JSON object, version 1`},
		{"version", strings.Replace(string(good), `"version":1`, `"version":2`, 1), "bundle refused: version 2; this hostpass reads version 1"},
		{"two objects", string(good) + string(good), "bundle refused: something follows its JSON object: a bundle is one object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadBundle(bytes.NewReader([]byte(tc.text)))
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
	_ = filepath.Join
}

func sha256New() hash.Hash { return sha256.New() }

// A later epoch's key signs a checkpoint of a tree holding forged records
// of an earlier epoch: what whoever takes the host later can make. The
// bundle is genuine in every signature and proof, and still refused.
func TestCheckBundleLaterKey(t *testing.T) {
	l, _ := story(t)
	forged := resign(t, l, 3, false, func(r *Record) { r.NetworkID = "net9" })
	root, err := forged.tree.RootAt(15)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by epoch 2's key; seq 3 is in epoch 0.
	note, err := SignCheckpoint(l.keys[2], l.origin, 15, root)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := forged.tree.ProveRecord(15, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := BundleRecord{Leaf: 2, Line: string(forged.lines[2])}
	for _, h := range proof {
		r.Proof = append(r.Proof, h.String())
	}
	b := &Bundle{Version: BundleVersion, Origin: l.origin, Seq: 3, Records: []BundleRecord{r}, Checkpoints: []BundleCheckpoint{{Seq: 16, Note: string(note)}},
		KeyCerts: []string{string(l.keys[1].Cert()), string(l.keys[2].Cert())}}
	_, err = CheckBundle(b, l.pub())
	want := "bundle refused: record seq 3 is in epoch 0, but it is proven under a checkpoint signed by the key of epoch 2: the first checkpoint after a record is signed by its epoch's key, and whoever holds a later key can sign any tree, forged records and all; ask for the bundle hostpass audit prove writes, each record under the first checkpoint after it"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// ck is the checkpoint l holds at seq, opened, as Proven lists it.
func ck(t *testing.T, l *handLog, seq uint64, epoch uint64) ProvenCheckpoint {
	t.Helper()
	root, err := l.tree.RootAt(int64(seq) - 1)
	if err != nil {
		t.Fatal(err)
	}
	return ProvenCheckpoint{Seq: seq, Size: int64(seq) - 1, Root: root, Epoch: epoch, Signer: l.keys[epoch].Name()}
}

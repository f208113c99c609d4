package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// The signed log of testdata/audit/signed.jsonl is made once, from the
// audit package's parts (the key file, SignCheckpoint, StepSignKeyFile, the
// tree), laid out as docs/proof.md says the daemon writes it, and kept with
// its verifier key (signed.pub) and what a syslog collector received of it
// (signed-collected.log): the keys are random, so it cannot be remade with
// the same output.
//
//	go test ./plugin/ -run TestGoldenSigned -signed-fixtures -update
var signedFixtures = flag.Bool("signed-fixtures", false, "rewrite the signed audit log in testdata/audit/ (then run with -update too)")

// signedWriter writes a signed log by hand.
type signedWriter struct {
	t       *testing.T
	keyPath string
	key     *audit.SignKey
	tree    *audit.Tree
	prev    string
	seq     uint64
	epoch   uint64
	lines   []string
}

func (w *signedWriter) add(rec audit.Record) {
	w.t.Helper()
	w.seq++
	e := w.epoch
	rec.Seq, rec.Prev, rec.Epoch, rec.Schema, rec.Host = w.seq, w.prev, &e, audit.Schema, "node1"
	body, err := json.Marshal(rec)
	if err != nil {
		w.t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	w.prev = hex.EncodeToString(sum[:])
	line := string(body[:len(body)-1]) + `,"hash":"` + w.prev + `"}`
	if err := w.tree.Append([]byte(line)); err != nil {
		w.t.Fatal(err)
	}
	w.lines = append(w.lines, line)
}

func (w *signedWriter) checkpoint(at time.Time, reason string) {
	w.t.Helper()
	root, err := w.tree.Root()
	if err != nil {
		w.t.Fatal(err)
	}
	msg, err := audit.SignCheckpoint(w.key, w.key.Origin(), w.tree.Size(), root)
	if err != nil {
		w.t.Fatal(err)
	}
	w.add(audit.Record{Time: at, Event: audit.Checkpoint, Outcome: audit.OK, Checkpoint: string(msg), CheckpointReason: reason})
}

func (w *signedWriter) stepEpoch(at time.Time) {
	w.t.Helper()
	w.checkpoint(at, audit.CheckpointEpoch)
	next, cert, err := audit.StepSignKeyFile(w.keyPath, w.key)
	if err != nil {
		w.t.Fatal(err)
	}
	n := w.epoch + 1
	w.add(audit.Record{Time: at, Event: audit.EpochEnd, Outcome: audit.OK, NextEpoch: &n, KeyCert: string(cert)})
	w.key, w.epoch = next, n
}

// writeSignedFixtures writes signed.jsonl: a start checkpoint, the story of
// records() with an epoch step after its fourth record, ten quiet minutes
// with no heartbeat (a gap), a heartbeat, the stop checkpoint, the epoch
// step at stop and audit.stop; signed.pub; and signed-collected.log, every
// checkpoint record as rsyslog wrote the syslog messages it received.
func writeSignedFixtures(t *testing.T) {
	dir := t.TempDir()
	w := &signedWriter{t: t, keyPath: filepath.Join(dir, "sign.key"), tree: audit.NewTree(), prev: audit.Genesis}
	vkey, err := audit.NewSignKeyFile(w.keyPath, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if w.key, err = audit.ReadSignKeyFile(w.keyPath); err != nil {
		t.Fatal(err)
	}
	recs := records()
	w.checkpoint(start.Add(-time.Second), audit.CheckpointStart)
	for i, rec := range recs {
		if rec.View != nil {
			rec.View = nil // the story's views are written by a real log only
		}
		w.add(rec)
		if i == 3 {
			w.stepEpoch(rec.Time)
		}
	}
	end := recs[len(recs)-1].Time
	w.checkpoint(end.Add(10*time.Minute), audit.CheckpointHeartbeat)
	w.checkpoint(end.Add(11*time.Minute), audit.CheckpointStop)
	w.stepEpoch(end.Add(11 * time.Minute))
	w.add(audit.Record{Time: end.Add(11 * time.Minute), Event: audit.Stop, Outcome: audit.OK})

	var collected strings.Builder
	for _, l := range w.lines {
		if strings.Contains(l, `"event":"audit.checkpoint"`) {
			var r audit.Record
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&collected, "<134>1 %s node1 hostpass 4242 - [hostpass@32473 seq=\"%d\" epoch=\"%d\" prev=\"%s\" hash=\"%s\"] %s\n",
				r.Time.Format(time.RFC3339Nano), r.Seq, *r.Epoch, r.Prev, r.Hash, l)
		}
	}
	for name, text := range map[string]string{
		"signed.jsonl":         strings.Join(w.lines, "\n") + "\n",
		"signed.pub":           vkey + "\n",
		"signed-collected.log": collected.String(),
	} {
		if err := os.WriteFile(filepath.Join(fixtureDir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// signedDir copies the signed log and its companions to a folder of its
// own.
func signedDir(t *testing.T) string {
	t.Helper()
	dir := fixture(t, "signed.jsonl")
	for _, name := range []string{"signed.pub", "signed-collected.log"} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	return dir
}

func verifySignedArgs(extra ...string) func(t *testing.T, dir string) []string {
	return func(t *testing.T, dir string) []string {
		args := []string{"audit", "verify", "--pubkey", filepath.Join(dir, "signed.pub")}
		for _, e := range extra {
			args = append(args, strings.ReplaceAll(e, "$DIR", dir))
		}
		return append(args, filepath.Join(dir, "audit.jsonl"))
	}
}

// TestGoldenSigned compares what verify --pubkey, prove and check-proof
// print, and their exit codes, with testdata/audit-*.golden, over the
// signed log of testdata/audit/ and copies of it damaged one way each.
func TestGoldenSigned(t *testing.T) {
	if *signedFixtures {
		writeSignedFixtures(t)
	}
	t.Setenv("HOSTPASS_AUDIT_LOG", "")
	const current = "audit.jsonl"
	collected := "--checkpoint=$DIR/signed-collected.log"
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		args   func(t *testing.T, dir string) []string
		code   int
	}{
		{name: "audit-verify-signed-ok", code: 0, args: verifySignedArgs(collected)},
		{name: "audit-verify-signed-unverified", code: 3,
			args: func(t *testing.T, dir string) []string {
				return []string{"audit", "verify", filepath.Join(dir, current)}
			}},
		{name: "audit-verify-signed-chain-only", code: 0,
			args: func(t *testing.T, dir string) []string {
				return []string{"audit", "verify", "--chain-only", filepath.Join(dir, current)}
			}},
		{name: "audit-verify-signed-cut-tail", code: 1, args: verifySignedArgs(collected),
			// Whoever takes the host cuts the stop and what follows.
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string { return ls[:len(ls)-4] })
			}},
		{name: "audit-verify-signed-rewritten", code: 1, args: verifySignedArgs(),
			// A keyless attacker edits a record and rebuilds the chain.
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string {
					i := lineWith(t, ls, `"name":"rogue"`)
					ls[i] = strings.Replace(ls[i], `"name":"rogue"`, `"name":"backup"`, 1)
					return rechain(t, ls, i)
				})
			}},
		{name: "audit-verify-signed-no-cert", code: 1, args: verifySignedArgs(),
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string {
					i := lineWith(t, ls, `"key_cert"`)
					ls[i] = ls[i][:strings.Index(ls[i], `,"key_cert"`)] + ls[i][strings.Index(ls[i], `,"epoch"`):]
					return rechain(t, ls, i)
				})
			}},
		{name: "audit-verify-signed-checkpoint-bad", code: 1, args: verifySignedArgs("--checkpoint=$DIR/forged.note"),
			damage: func(t *testing.T, dir string) {
				ls := strings.Split(string(read(t, dir, "signed-collected.log")), "\n")
				var rec audit.Record
				if err := json.Unmarshal([]byte(ls[1][strings.Index(ls[1], "{"):]), &rec); err != nil {
					t.Fatal(err)
				}
				lines := strings.Split(rec.Checkpoint, "\n")
				lines[1] += "0" // the size, ten times
				note := strings.Join(lines, "\n")
				os.WriteFile(filepath.Join(dir, "forged.note"), []byte(note), 0o644)
			}},

		// prove and check-proof.
		{name: "audit-prove-web", code: 0,
			args: func(t *testing.T, dir string) []string {
				return []string{"audit", "prove", "--container", "web", filepath.Join(dir, current)}
			}},
		{name: "audit-prove-not-covered", code: 1,
			args: func(t *testing.T, dir string) []string {
				return []string{"audit", "prove", "--seq", "17", filepath.Join(dir, current)}
			}},
		{name: "audit-check-proof-web", code: 0, damage: proveTo("web", "web.bundle", nil), args: checkProof("web.bundle")},
		{name: "audit-check-proof-host-mode", code: 0, damage: proveTo(dbID[:12], "db.bundle", nil), args: checkProof("db.bundle")},
		{name: "audit-check-proof-changed-line", code: 1, args: checkProof("web.bundle"),
			damage: proveTo("web", "web.bundle", func(b []byte) []byte {
				return bytes.Replace(b, []byte(`\"name\":\"web\"`), []byte(`\"name\":\"www\"`), 1)
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := signedDir(t)
			if tc.damage != nil {
				tc.damage(t, dir)
			}
			args := tc.args(t, dir)
			var out bytes.Buffer
			code := run(args, &out, &out)
			got := strings.ReplaceAll(out.String(), dir, "$DIR")
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, dir, "$DIR")
			}
			if code != tc.code {
				t.Errorf("hostpass %q exits %d, want %d\n%s", args, code, tc.code, got)
			}
			checkGolden(t, tc.name, args, []byte(got))
		})
	}
}

// proveTo runs prove --container q -o dir/name, then change on the bundle.
func proveTo(q, name string, change func([]byte) []byte) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		path := filepath.Join(dir, name)
		var out bytes.Buffer
		if code := run([]string{"audit", "prove", "--container", q, "-o", path, filepath.Join(dir, "audit.jsonl")}, &out, &out); code != 0 {
			t.Fatalf("prove exits %d: %s", code, out.String())
		}
		if change != nil {
			os.WriteFile(path, change(read(t, dir, name)), 0o644)
		}
	}
}

func checkProof(name string) func(t *testing.T, dir string) []string {
	return func(t *testing.T, dir string) []string {
		return []string{"audit", "check-proof", "--pubkey", filepath.Join(dir, "signed.pub"), filepath.Join(dir, name)}
	}
}

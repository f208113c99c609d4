package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// goldenRun runs hostpass with args over the copy of the signed log in dir,
// checks the exit code and compares what it prints with testdata/name.golden.
func goldenRun(t *testing.T, name, dir string, args []string, code int) {
	t.Helper()
	var out bytes.Buffer
	got := run(args, &out, &out)
	text := strings.ReplaceAll(out.String(), dir, "$DIR")
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, dir, "$DIR")
	}
	if got != code {
		t.Errorf("hostpass %q exits %d, want %d\n%s", args, got, code, text)
	}
	checkGolden(t, name, args, []byte(text))
}

// With --start there is no tree, so no checkpoint's root is checked: a
// keyless attacker who edits a record and rebuilds the chain after it goes
// unseen. verify says UNVERIFIED, what it checked and what it did not, and
// exits 3; before, it said "ok" with "(signatures only ...)" and exited 0.
func TestGoldenSignedStartIsUnverified(t *testing.T) {
	t.Setenv("HOSTPASS_AUDIT_LOG", "")
	dir := signedDir(t)
	var start string
	edit(t, dir, "audit.jsonl", func(ls []string) []string {
		i := lineWith(t, ls, `"name":"rogue"`)
		ls[i] = strings.Replace(ls[i], `"name":"rogue"`, `"name":"backup"`, 1)
		ls = rechain(t, ls, i)
		start = "2:" + member(t, ls[1], "hash")
		return ls[1:] // the first file rotated away
	})
	args := []string{"audit", "verify", "--pubkey", filepath.Join(dir, "signed.pub"), "--start", start, filepath.Join(dir, "audit.jsonl")}
	goldenRun(t, "audit-verify-signed-start-unverified", dir, args, 3)
}

// verify --pubkey given the daemon's signing key file, not FILE.pub, says
// so and names FILE.pub; before, it said "malformed verifier id".
func TestVerifyPubkeyGivenTheSigningKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sign.key")
	if code := run([]string{"audit", "keygen", "--sign", "--host", "node1", key}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("keygen --sign: exit %d", code)
	}
	want := "hostpass audit verify: " + key + ": verifier key refused: it is the private signing key file, the daemon's, not its verifier key: give " + key + ".pub, which `hostpass audit keygen --sign FILE` wrote beside it (and keep the signing key on the host: whoever holds it can sign)\n"
	var out, errOut bytes.Buffer
	code := run([]string{"audit", "verify", "--pubkey", key, filepath.Join(dir, "audit.jsonl")}, &out, &errOut)
	if code != 2 || errOut.String() != want {
		t.Errorf("verify --pubkey KEYFILE = %d\nstdout: %s\nstderr: %s\nwant 2, stderr %q", code, out.String(), errOut.String(), want)
	}
	if _, err := audit.ParseSignPub(read(t, dir, "sign.key")); err == nil || !strings.Contains(err.Error(), "it is the private signing key file") {
		t.Errorf("ParseSignPub(the signing key file) = %v", err)
	}
}

// A crash between the key file's step and the epoch's last checkpoint: the
// next start logs the certification, then audit.restart. verify accepts
// it, and says on a GAP: line which records no checkpoint of their own
// epoch vouches for.
func TestVerifyEpochEndedByACrashGapLine(t *testing.T) {
	dir := t.TempDir()
	w := &signedWriter{t: t, keyPath: filepath.Join(dir, "sign.key"), tree: audit.NewTree(), prev: audit.Genesis}
	vkey, err := audit.NewSignKeyFile(w.keyPath, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if w.key, err = audit.ReadSignKeyFile(w.keyPath); err != nil {
		t.Fatal(err)
	}
	recs := records()[:4]
	w.checkpoint(start.Add(-time.Second), audit.CheckpointStart)
	w.add(recs[0])
	w.checkpoint(recs[0].Time, audit.CheckpointRecords)
	w.add(recs[1])
	w.add(recs[2])
	// The key file stepped, then the daemon died: the next start logs the
	// certification, audit.restart and its start checkpoint.
	root, err := w.tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	next, cert, err := audit.StepSignKeyFile(w.keyPath, w.key, audit.CertTree{Size: w.tree.Size(), Root: root, Time: recs[2].Time})
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(1)
	at := recs[2].Time.Add(time.Minute)
	w.add(audit.Record{Time: at, Event: audit.EpochEnd, Outcome: audit.OK, NextEpoch: &n, KeyCert: string(cert)})
	w.key, w.epoch = next, 1
	w.add(audit.Record{Time: at, Event: audit.Restart, Outcome: audit.OK, CleanStop: audit.Flag(false)})
	w.checkpoint(at, audit.CheckpointStart)
	w.add(recs[3])
	w.checkpoint(at.Add(time.Second), audit.CheckpointStop)
	w.add(audit.Record{Time: at.Add(time.Second), Event: audit.Stop, Outcome: audit.OK})
	log := filepath.Join(dir, "audit.jsonl")
	pub := filepath.Join(dir, "sign.key.pub")
	os.WriteFile(log, []byte(strings.Join(w.lines, "\n")+"\n"), 0o644)
	os.WriteFile(pub, []byte(vkey+"\n"), 0o644)

	var out bytes.Buffer
	code := run([]string{"audit", "verify", "--pubkey", pub, "--heartbeat", "0", log}, &out, &out)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	gap := "GAP: " + log + " line 6: epoch 0 ended in a crash without its last checkpoint: the certification of epoch 1's key, signed by epoch 0's, pins seq 1-5; seq 6-6 (its audit.epoch, and the torn tail a crash left) are vouched for only by later epochs' checkpoints, whose keys can sign over rewritten records; compare with checkpoints collected off the host (--checkpoint)"
	if code != 0 || len(lines) != 2 || lines[0] != gap || !strings.Contains(lines[1], ", 1 restart(s) (1 after a crash), 1 epoch(s) ended by a crash without their last checkpoint (GAP: above); last 11:") {
		t.Errorf("verify exits %d:\n%s\nwant 0, the line\n%s\nthen ok: naming the restart and the epoch", code, out.String(), gap)
	}
}

// A stop whose key step follows the stop checkpoint (the writer writes no
// second checkpoint when the last record is one), then a start whose clock
// stepped back ten minutes: verify exits 0, prints a BACKDATED: line for
// each record dated before epoch 1's key was made, and its ok line counts
// them and says what the last certification pins past the last checkpoint.
func TestVerifyBackdatedLineAndCertPin(t *testing.T) {
	dir := t.TempDir()
	w := &signedWriter{t: t, keyPath: filepath.Join(dir, "sign.key"), tree: audit.NewTree(), prev: audit.Genesis}
	vkey, err := audit.NewSignKeyFile(w.keyPath, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if w.key, err = audit.ReadSignKeyFile(w.keyPath); err != nil {
		t.Fatal(err)
	}
	recs := records()[:2]
	w.checkpoint(start.Add(-time.Second), audit.CheckpointStart)
	w.add(recs[0])
	w.checkpoint(recs[0].Time, audit.CheckpointStop) // seq 3
	root, err := w.tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	made := recs[0].Time.Add(time.Second)
	next, cert, err := audit.StepSignKeyFile(w.keyPath, w.key, audit.CertTree{Size: w.tree.Size(), Root: root, Time: made})
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(1)
	w.add(audit.Record{Time: made, Event: audit.EpochEnd, Outcome: audit.OK, NextEpoch: &n, KeyCert: string(cert)}) // seq 4
	w.key, w.epoch = next, 1
	w.add(audit.Record{Time: made, Event: audit.Stop, Outcome: audit.OK})
	back := made.Add(-10 * time.Minute)       // the clock steps back
	w.checkpoint(back, audit.CheckpointStart) // seq 6
	rec := recs[1]
	rec.Time = back
	w.add(rec) // seq 7
	w.checkpoint(made.Add(time.Second), audit.CheckpointStop)
	w.add(audit.Record{Time: made.Add(time.Second), Event: audit.Stop, Outcome: audit.OK})
	log := filepath.Join(dir, "audit.jsonl")
	pub := filepath.Join(dir, "sign.key.pub")
	os.WriteFile(log, []byte(strings.Join(w.lines, "\n")+"\n"), 0o644)
	os.WriteFile(pub, []byte(vkey+"\n"), 0o644)

	var out bytes.Buffer
	code := run([]string{"audit", "verify", "--pubkey", pub, "--heartbeat", "0", log}, &out, &out)
	backdated := func(line, seq int) string {
		return "BACKDATED: " + log + " line " + string(rune('0'+line)) + " (seq " + string(rune('0'+seq)) + "): dated 2026-11-27T09:50:01Z, before epoch 1's key was made (2026-11-27T10:00:01Z) by more than 5m0s: the clock stepped back, or epoch 1's key holder backdated it; check-proof refuses a bundle of it"
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if code != 0 || len(lines) != 3 || lines[0] != backdated(6, 6) || lines[1] != backdated(7, 7) ||
		!strings.Contains(lines[2], ", 2 record(s) dated before their epoch's key was made (BACKDATED: above)") {
		t.Errorf("verify exits %d:\n%s\nwant 0, the lines\n%s\n%s\nthen ok: counting them", code, out.String(), backdated(6, 6), backdated(7, 7))
	}

	// Cut after the stop of epoch 0: the last checkpoint (seq 3) covers
	// seq 1-2, the certification pins seq 1-3.
	os.WriteFile(log, []byte(strings.Join(w.lines[:5], "\n")+"\n"), 0o644)
	out.Reset()
	code = run([]string{"audit", "verify", "--pubkey", pub, "--heartbeat", "0", log}, &out, &out)
	if want := ", the last at seq 3 covers seq 1-2 and the certification of epoch 1's key, signed by epoch 0's, pins seq 1-3 (seq 4-5 under neither yet);"; code != 0 || !strings.Contains(out.String(), want) {
		t.Errorf("verify exits %d:\n%s\nwant 0 and ok: with\n%s", code, out.String(), want)
	}
}

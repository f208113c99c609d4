//go:build e2e

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// TestCollectedCheckpointsCatchTampering is issue 10's "done means": a
// signed log of a real dockerd's calls, its checkpoints collected by a real
// rsyslog (over TCP, and over UDP), and every tamper kind checked against
// them with `hostpass audit verify --pubkey FILE.pub --checkpoint FILE`:
//   - the untouched log verifies;
//   - a cut tail (the last records, its last checkpoints with them) fails,
//     naming the collected checkpoint the log no longer holds;
//   - one record rewritten, everything after it re-chained and every later
//     checkpoint re-signed with the live key file, as root on the host
//     would: verify without --checkpoint passes (the log is consistent in
//     itself), against the collected checkpoints it fails;
//   - the log deleted and a fresh one started under the live key: fails at
//     genesis.
func TestCollectedCheckpointsCatchTampering(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	for i, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			s := signedRun(t, e, transport, 10524+i)
			collected := s.collectedCheckpoints(t, transport)

			t.Run("untouched", func(t *testing.T) {
				t.Log(verifyLog(t, "--pubkey", s.pub, "--checkpoint", collected, s.log))
			})
			t.Run("cut-tail", func(t *testing.T) { s.cutTail(t, collected) })
			t.Run("rewritten", func(t *testing.T) { s.rewrite(t, collected) })
			t.Run("fresh-log", func(t *testing.T) { s.freshLog(t, collected) })
		})
	}
}

// signed is one signed log and what the test knows of it.
type signed struct {
	dir    string
	pub    string // FILE.pub: what the auditor has
	live   string // the daemon's key file after its last stop
	stolen string // a copy of the key file taken while the daemon ran: root's
	log    string
	recs   []chained
	c      *collector
}

// signedRun makes a signing key, and runs a legacy plugin signing its log
// with it, a checkpoint every 3 records, its syslog to a collector on
// 127.0.0.1:port over transport: first a refused 10 KB network.create, a
// network and a container; then, after a restart (the key steps to epoch 1
// at the clean stop), two more containers. While the second run is idle its
// key file is copied: the live key, as root on the host can take it.
// Epochs step at clean stops only (1 h, 100,000 records), so that every
// record after the copy's epoch starts is the copy's to sign.
func signedRun(t *testing.T, e *engine, transport string, port int) *signed {
	t.Helper()
	s := &signed{dir: e.mkdir(t, "signed-"+transport)}
	s.live = filepath.Join(s.dir, "sign.key")
	s.pub, s.stolen = s.live+".pub", filepath.Join(s.dir, "stolen.key")
	run(t, hostpassBin(t), "audit", "keygen", "--sign", s.live)
	if !fileExists(s.pub) {
		t.Fatalf("audit keygen --sign %s wrote no %s", s.live, s.pub)
	}
	s.c = newCollector(t, e, port)
	p := newLegacyPlugin(t, e)
	p.extra = []string{"--sign-key", s.live, "--checkpoint-records", "3",
		"--seal-epoch-records", "100000", "--seal-epoch-interval", "1h",
		"--syslog", fmt.Sprintf("%s://127.0.0.1:%d", transport, port)}
	s.log = p.audit
	p.start(t)
	refuseBigOption(t, e, p)
	network := "n-signed-" + transport
	e.docker(t, "network", "create", "-d", p.name, network)
	e.docker(t, "run", "--rm", "--network", network, image, "true")
	p.stop(t)

	p.start(t)
	e.docker(t, "run", "--rm", "--network", network, image, "true")
	e.docker(t, "run", "--rm", "--network", network, image, "true")
	copyFile(t, s.live, s.stolen)
	e.docker(t, "network", "rm", network)
	p.stop(t)

	s.recs = readChained(t, s.log)
	s.c.waitSeq(t, s.recs[len(s.recs)-1].Seq)
	s.c.stop(t)
	checkCollected(t, s.c, s.recs)
	if k := keyEpochOf(t, s.stolen); k != 1 {
		t.Fatalf("the key file copied during the second run is at epoch %d, want 1 (stepped once, at the first clean stop)", k)
	}
	return s
}

// collectedCheckpoints is the file the auditor passes to --checkpoint: over
// TCP the collector's checkpoints.jsonl (MSG alone, the record's line); over
// UDP the collector's raw lines of the audit.checkpoint messages, header and
// STRUCTURED-DATA included. Either must hold every checkpoint of the log.
func (s *signed) collectedCheckpoints(t testing.TB, transport string) string {
	t.Helper()
	path := s.c.checkpoints
	if transport == "udp" {
		var raw []string
		for _, line := range readLines(t, s.c.received) {
			if m := sdRE.FindStringSubmatch(line); m != nil && m[1] == "audit.checkpoint" {
				raw = append(raw, line)
			}
		}
		path = filepath.Join(s.dir, "collected-raw.log")
		writeLines(t, path, raw)
	}
	var inLog int
	for _, r := range s.recs {
		if r.Event == "audit.checkpoint" {
			inLog++
		}
	}
	if got := len(collectedNotes(t, path)); got != inLog || inLog < 4 {
		t.Fatalf("%s holds %d checkpoints, the log %d; want them all, at least 4 (start and stop of two runs)", path, got, inLog)
	}
	return path
}

// collectedCheckpoint is one checkpoint the collector holds: where, and the
// tree size it commits to.
type collectedCheckpoint struct {
	line  int
	size  int64
	epoch uint64
}

// collectedNotes reads the checkpoints in a collected file: each line's
// record from its first '{' on (a raw syslog line holds it after its SD).
func collectedNotes(t testing.TB, path string) []collectedCheckpoint {
	t.Helper()
	var out []collectedCheckpoint
	for i, line := range readLines(t, path) {
		var r struct {
			Checkpoint string  `json:"checkpoint"`
			Epoch      *uint64 `json:"epoch"`
		}
		if err := json.Unmarshal([]byte(line[strings.Index(line, "{"):]), &r); err != nil || r.Checkpoint == "" || r.Epoch == nil {
			t.Fatalf("%s:%d: not a whole audit.checkpoint record (%v):\n%.400s", path, i+1, err, line)
		}
		lines := strings.Split(r.Checkpoint, "\n")
		size, err := strconv.ParseInt(lines[1], 10, 64)
		if err != nil {
			t.Fatalf("%s:%d: checkpoint size %q: %v", path, i+1, lines[1], err)
		}
		out = append(out, collectedCheckpoint{line: i + 1, size: size, epoch: *r.Epoch})
	}
	return out
}

// cutTail drops the log's last records, its last two checkpoints with them,
// as someone who cuts the log on the host would. verify --pubkey alone
// passes; against the collected checkpoints it names the first one the cut
// log no longer holds.
func (s *signed) cutTail(t *testing.T, collected string) {
	var cps []int64 // seqs of the log's checkpoint records
	for _, r := range s.recs {
		if r.Event == "audit.checkpoint" {
			cps = append(cps, r.Seq)
		}
	}
	// Two records fewer than the last but one checkpoint commits to: both
	// of the last two commit to records the cut takes.
	keep := int(cps[len(cps)-2]) - 3
	cut := filepath.Join(s.dir, "cut", "audit.jsonl")
	writeLines(t, cut, lines(s.recs[:keep]))

	// The cut log alone is consistent: its chain, signatures and trees
	// hold, and it reads like the log of a daemon that is still running.
	t.Log(verifyLog(t, "--pubkey", s.pub, cut))
	out := verifyFails(t, "--pubkey", s.pub, "--checkpoint", collected, cut)
	// verify names the first collected checkpoint the cut log does not hold.
	var larger []collectedCheckpoint
	for _, cp := range collectedNotes(t, collected) {
		if cp.size > int64(keep) {
			larger = append(larger, cp)
		}
	}
	if len(larger) < 2 {
		t.Fatalf("the cut left %d records, and only %d collected checkpoints are larger: the cut must take the last two", keep, len(larger))
	}
	cp := larger[0]
	want := fmt.Sprintf("FAIL: %s line %d: cut tail: collected checkpoint of %d records (epoch %d), whose own record is seq %d, but the log holds %d: its last %d records (seq %d to %d) were cut off",
		collected, cp.line, cp.size, cp.epoch, cp.size+1, keep, cp.size+1-int64(keep), keep+1, cp.size+1)
	t.Log(out)
	if !strings.HasPrefix(out, want) {
		t.Errorf("verify of the log cut to %d records:\n got %s\nwant %s…", keep, out, want)
	}
}

// rewrite changes one record of the second run (its first endpoint.join:
// another endpoint ID), re-chains every record after it, re-signs every
// later checkpoint with the stolen key file and certifies a next epoch's
// key over the forged tree: what root on the host can do with the live
// key. The log is consistent in itself: verify --pubkey alone
// passes. Only the checkpoints the collector holds catch it.
func (s *signed) rewrite(t *testing.T, collected string) {
	key, err := audit.ReadSignKeyFile(s.stolen)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Wipe()
	target := -1
	for i, r := range s.recs {
		if r.Event == "endpoint.join" && r.Epoch != nil && *r.Epoch == key.Epoch() {
			target = i
			break
		}
	}
	if target < 0 {
		t.Fatalf("no endpoint.join in epoch %d, the stolen key's:\n%s", key.Epoch(), strings.Join(lines(s.recs), "\n"))
	}
	old := s.recs[target]
	var ep struct {
		EndpointID string `json:"endpoint_id"`
	}
	json.Unmarshal([]byte(old.line), &ep)
	forged := strings.Replace(old.line, `"endpoint_id":"`+ep.EndpointID+`"`, `"endpoint_id":"`+strings.Repeat("f", len(ep.EndpointID))+`"`, 1)
	if ep.EndpointID == "" || forged == old.line {
		t.Fatalf("seq %d has no endpoint_id to rewrite:\n%s", old.Seq, old.line)
	}

	out := make([]string, len(s.recs))
	tree := audit.NewTree()
	defer tree.Close()
	resigned, prev := 0, ""
	for i, r := range s.recs {
		line := r.line
		switch {
		case i < target:
		case i == target:
			line = rehash(t, forged)
		default:
			line = strings.Replace(line, `"prev":"`+r.Prev+`"`, `"prev":"`+prev+`"`, 1)
			if r.Event == "audit.checkpoint" {
				line = resign(t, key, tree, line)
				resigned++
			}
			if r.Event == "audit.epoch" && r.Epoch != nil && *r.Epoch == key.Epoch() {
				// The epoch's certification pins the tree at the step:
				// the live key certifies a key of the attacker's own for
				// the next epoch, over the forged tree.
				line = recertify(t, key, tree, line)
			}
			line = rehash(t, line)
		}
		if err := tree.Append([]byte(line)); err != nil {
			t.Fatal(err)
		}
		out[i] = line
		prev = line[len(line)-66 : len(line)-2]
	}
	if resigned == 0 {
		t.Fatalf("no checkpoint after seq %d to re-sign", old.Seq)
	}
	forgedLog := filepath.Join(s.dir, "rewritten", "audit.jsonl")
	writeLines(t, forgedLog, out)

	// The forged log is consistent in itself: chain, signatures, trees.
	t.Log(verifyLog(t, "--pubkey", s.pub, forgedLog))
	// The collector's checkpoints, signed before the rewrite, are not:
	// verify names the first that covers the forged record.
	got := verifyFails(t, "--pubkey", s.pub, "--checkpoint", collected, forgedLog)
	var cp *collectedCheckpoint
	for _, c := range collectedNotes(t, collected) {
		if c.size >= old.Seq {
			cp = &c
			break
		}
	}
	if cp == nil {
		t.Fatalf("no collected checkpoint covers seq %d", old.Seq)
	}
	t.Log(got)
	want := fmt.Sprintf("FAIL: %s line %d: rewritten: collected checkpoint of %d records (epoch %d) has root ", collected, cp.line, cp.size, cp.epoch)
	if !strings.HasPrefix(got, want) || !strings.Contains(got, fmt.Sprintf("history before seq %d was rewritten since the checkpoint was sent", cp.size+1)) {
		t.Errorf("verify of a log rewritten at seq %d:\n got %s\nwant %s… history before seq %d was rewritten since the checkpoint was sent…", old.Seq, got, want, cp.size+1)
	}
}

// freshLog: the log deleted, and hostpass started on an empty one with the
// live key file, as root on the host can. Its records chain and its
// checkpoints are signed by the live key, but its first record is not
// genesis under FILE.pub's key.
func (s *signed) freshLog(t *testing.T, collected string) {
	dir := filepath.Join(s.dir, "fresh")
	key := filepath.Join(dir, "sign.key")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	copyFile(t, s.live, key)
	d := startDaemon(t, dir, "--sign-key", key, "--checkpoint-records", "3", "--watch=false")
	benchCalls(t, d, 6)
	d.stop(t)

	first := readChained(t, d.audit)[0]
	if first.Seq != 1 || first.Epoch == nil || *first.Epoch == 0 {
		t.Fatalf("the fresh log's first record: seq %d epoch %v, want seq 1 in the live key's epoch (> 0):\n%s", first.Seq, first.Epoch, first.line)
	}
	want := fmt.Sprintf("FAIL: %s line 1 (seq 1): late start: the genesis record is in epoch %d, not epoch 0: a signed log starts under epoch 0's key, FILE.pub's, so this one was started with a later key",
		d.audit, *first.Epoch)
	for _, args := range [][]string{
		{"--pubkey", s.pub, d.audit},
		{"--pubkey", s.pub, "--checkpoint", collected, d.audit},
	} {
		out := verifyFails(t, args...)
		t.Log(out)
		if !strings.HasPrefix(out, want) {
			t.Errorf("verify %v of a fresh log under the live key:\n got %s\nwant %s…", args, out, want)
		}
	}
}

// rehash recomputes a signed log line's hash: SHA-256 over the line up to
// its hash member, closed with '}' (audit/chain.go).
func rehash(t testing.TB, line string) string {
	t.Helper()
	const member = `,"hash":"`
	cut := len(line) - len(member) - 64 - 2
	if cut < 0 || line[cut:cut+len(member)] != member {
		t.Fatalf("line does not end with its hash: %.300s", line)
	}
	sum := sha256.Sum256([]byte(line[:cut] + "}"))
	return line[:cut] + member + hex.EncodeToString(sum[:]) + `"}`
}

// resign replaces a checkpoint record's signed note with one of tree (the
// rewritten records before it), signed by key.
func resign(t testing.TB, key *audit.SignKey, tree *audit.Tree, line string) string {
	t.Helper()
	var r struct {
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatal(err)
	}
	root, err := tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	note, err := audit.SignCheckpoint(key, key.Origin(), tree.Size(), root)
	if err != nil {
		t.Fatal(err)
	}
	oldJSON, _ := json.Marshal(r.Checkpoint)
	newJSON, _ := json.Marshal(string(note))
	if !bytes.Contains([]byte(line), oldJSON) {
		t.Fatalf("checkpoint record does not hold its note as json.Marshal writes it:\n%s", line)
	}
	return strings.Replace(line, string(oldJSON), string(newJSON), 1)
}

// recertify replaces an audit.epoch line's key_cert with key's
// certification of a new key for the next epoch, pinning tree as it is
// (the records before the audit.epoch), stepped at the record's time.
func recertify(t testing.TB, key *audit.SignKey, tree *audit.Tree, line string) string {
	t.Helper()
	var r struct {
		Time    time.Time `json:"time"`
		KeyCert string    `json:"key_cert"`
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatal(err)
	}
	root, err := tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	next, cert, err := audit.StepSignKey(key, audit.CertTree{Size: tree.Size(), Root: root, Time: r.Time})
	if err != nil {
		t.Fatal(err)
	}
	next.Wipe()
	oldJSON, _ := json.Marshal(r.KeyCert)
	newJSON, _ := json.Marshal(string(cert))
	if r.KeyCert == "" || !bytes.Contains([]byte(line), oldJSON) {
		t.Fatalf("audit.epoch record does not hold its key_cert as json.Marshal writes it:\n%s", line)
	}
	return strings.Replace(line, string(oldJSON), string(newJSON), 1)
}

func lines(recs []chained) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.line
	}
	return out
}

// writeLines writes lines, each with its newline, to a new file at path.
func writeLines(t testing.TB, path string, lines []string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// keyEpochOf is the epoch a signing key file is at.
func keyEpochOf(t testing.TB, path string) uint64 {
	t.Helper()
	k, err := audit.ReadSignKeyFile(path)
	if err != nil {
		t.Fatalf("signing key file %s: %v", path, err)
	}
	defer k.Wipe()
	return k.Epoch()
}

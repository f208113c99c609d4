//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/hostpass/hostpass/audit"
)

// runMark is what the suite reads of the records that mark a daemon's runs
// and a signed log's checkpoints, in its own copy of the format.
type runMark struct {
	Seq              int64   `json:"seq"`
	Event            string  `json:"event"`
	Hash             string  `json:"hash"`
	Time             string  `json:"time"`
	Epoch            *uint64 `json:"epoch"`
	NextEpoch        *uint64 `json:"next_epoch"`
	Checkpoint       string  `json:"checkpoint"`
	CheckpointReason string  `json:"checkpoint_reason"`
	KeyCert          string  `json:"key_cert"`
	LogEnd           *struct {
		Seq   int64  `json:"seq"`
		Hash  string `json:"hash"`
		Time  string `json:"time"`
		Event string `json:"event"`
	} `json:"log_end"`
	CleanStop *bool `json:"clean_stop"`
}

func readMarks(t *testing.T, path string) []runMark {
	t.Helper()
	var out []runMark
	for _, r := range readAuditAll(t, path) {
		var m runMark
		if err := json.Unmarshal([]byte(r.line), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// checkCheckpoints checks a signed log as an auditor holding FILE.pub
// alone: the certifications in its audit.epoch records from epoch 0's key
// on, every record in its epoch, and each checkpoint opened with its
// epoch's key, its size the records before it and its root their tree's.
// It returns the checkpoints' reasons in order.
func checkCheckpoints(t *testing.T, log, pubFile string, marks []runMark) []string {
	t.Helper()
	pub, err := audit.ReadSignPub(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	origin := strings.TrimSuffix(pub.Name(), "/e0")
	var certs [][]byte
	for _, m := range marks {
		if m.Event == "audit.epoch" {
			certs = append(certs, []byte(m.KeyCert))
		}
	}
	keys, err := audit.VerifyKeyChain(pub, certs)
	if err != nil {
		t.Fatalf("the key certifications in the log do not chain from %s: %v", pubFile, err)
	}
	files, err := audit.Files(log)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := audit.BuildTree(files)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	epoch := uint64(0)
	for _, m := range marks {
		if m.Epoch == nil || *m.Epoch != epoch {
			t.Fatalf("seq %d (%s): epoch %v, want %d", m.Seq, m.Event, m.Epoch, epoch)
		}
		if m.Event == "audit.epoch" {
			epoch = *m.NextEpoch
		}
		if m.Event != "audit.checkpoint" {
			continue
		}
		size, root, err := audit.OpenCheckpoint([]byte(m.Checkpoint), note.VerifierList(keys[*m.Epoch]), origin)
		if err != nil {
			t.Fatalf("checkpoint at seq %d (%s): %v", m.Seq, m.CheckpointReason, err)
		}
		want, err := tree.RootAt(m.Seq - 1)
		if err != nil || size != m.Seq-1 || root != want {
			t.Fatalf("checkpoint at seq %d: size %d, root %s; want %d, %s (%v)", m.Seq, size, root, m.Seq-1, want, err)
		}
		reasons = append(reasons, m.CheckpointReason)
	}
	return reasons
}

// TestSignedLogOnRealDocker: keygen --sign, a legacy plugin serving a real
// dockerd with --sign-key, a network and a container on it, SIGTERM. The
// log holds a start and a stop checkpoint, signed under FILE.pub's key
// chain and matching the tree of the records before them, and ends with
// audit.stop. Then kill -9 and a restart: audit.restart says the stop was
// not clean and where the log ended, and the log checks again.
func TestSignedLogOnRealDocker(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	key := filepath.Join(e.dir, "sign.key")
	out := run(t, hostpassBin(t), "audit", "keygen", "--sign", "--host", "e2e-host", key)
	if !strings.Contains(out, key+".pub") {
		t.Fatalf("keygen --sign output names no FILE.pub:\n%s", out)
	}

	p := newLegacyPlugin(t, e)
	p.extra = []string{"--sign-key", key}
	p.start(t)
	e.docker(t, "network", "create", "-d", p.name, "n-signed")
	e.docker(t, "run", "--rm", "--network", "n-signed", image, "true")
	waitAudit(t, p.audit, "the run's endpoint.delete", func(recs []record) bool {
		return len(filter(recs, byEvent("endpoint.delete", "ok"))) == 1
	})
	p.stop(t)

	marks := readMarks(t, p.audit)
	reasons := checkCheckpoints(t, p.audit, key+".pub", marks)
	if strings.Join(reasons, " ") != "start stop" {
		t.Errorf("checkpoints %v; want start, stop", reasons)
	}
	n := len(marks)
	if marks[0].Event != "audit.checkpoint" || marks[0].CheckpointReason != "start" {
		t.Errorf("first record %s %s; want the start checkpoint", marks[0].Event, marks[0].CheckpointReason)
	}
	if got := marks[n-3].Event + " " + marks[n-2].Event + " " + marks[n-1].Event; got != "audit.checkpoint audit.epoch audit.stop" {
		t.Errorf("the run ends with %s; want the stop checkpoint, the epoch's end, audit.stop", got)
	}

	// A crash, and a restart.
	p.start(t)
	e.docker(t, "network", "rm", "n-signed")
	waitAudit(t, p.audit, "network.delete", func(recs []record) bool {
		return len(filter(recs, byEvent("network.delete", "ok"))) == 1
	})
	before := readMarks(t, p.audit)
	p.kill9(t)
	os.Remove(p.sock) // what a killed daemon leaves behind
	p.start(t)
	p.stop(t)
	marks = readMarks(t, p.audit)
	reasons = checkCheckpoints(t, p.audit, key+".pub", marks)
	if strings.Join(reasons, " ") != "start stop start start stop" {
		t.Errorf("checkpoints %v; want start and stop for the first and last runs, start only for the killed one", reasons)
	}
	end := before[len(before)-1]
	r := marks[len(before)]
	if r.Event != "audit.restart" || r.CleanStop == nil || *r.CleanStop || r.LogEnd == nil ||
		r.LogEnd.Seq != end.Seq || r.LogEnd.Hash != end.Hash || r.LogEnd.Event != end.Event || r.LogEnd.Time != end.Time {
		t.Fatalf("after kill -9 the first record is %+v (log_end %+v); want audit.restart, clean_stop false, log_end seq %d %s %s",
			r, r.LogEnd, end.Seq, end.Event, end.Hash)
	}
	second := marks[len(marks)-1]
	if second.Event != "audit.stop" {
		t.Errorf("last record %s; want audit.stop", second.Event)
	}
	for _, m := range marks {
		if m.Event == "audit.restart" && m.Seq < r.Seq && (m.CleanStop == nil || !*m.CleanStop) {
			t.Errorf("the restart after a SIGTERM, seq %d, says the stop was not clean", m.Seq)
		}
	}
	// The chain (verify --pubkey, which checks the signatures too, is
	// verify's: today's verify takes a log with epochs for a sealed one).
	verifyLog(t, "--chain-only", p.audit)
}

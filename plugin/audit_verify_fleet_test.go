package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/hostpass/hostpass/audit"
)

// originOf is the origin of a signed host's log.
func originOf(t *testing.T, dir string) string {
	t.Helper()
	o, err := audit.LogOrigin([]string{filepath.Join(dir, "audit.jsonl")})
	if err != nil || o == "" {
		t.Fatalf("origin of %s: %q, %v", dir, o, err)
	}
	return o
}

// A signed host's log wiped (or replaced by another log) while its key
// and the collector's checkpoints are given: that host FAILs, named, and
// nothing tells the auditor to drop the key.
func TestFleetVerifyWipedLogFails(t *testing.T) {
	node1, pub1 := signedHost(t, "node-1")
	node2, pub2 := signedHost(t, "node-2")
	collected := collectorFileOf(t, nil, node1, node2)
	origin1 := originOf(t, node1)
	other, _ := signedHost(t, "node-1") // another log of node-1
	plain, _ := fleetDirs(t)            // node-1's log, unsigned
	if err := os.WriteFile(filepath.Join(node1, "audit.jsonl"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	wipe := "FAIL: host node-1: --pubkey " + pub1 + " is of log " + origin1 + ", of host node-1, but the log in " + node1 + " is not the log this key is for (replaced or wiped): it holds no record\n"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"wiped, with key and checkpoints", []string{"--pubkey", pub1, "--pubkey", pub2, "--checkpoint", collected, node1, node2}, wipe},
		{"replaced by another log", []string{"--pubkey", pub1, "--pubkey", pub2, other, node2},
			"FAIL: host node-1: --pubkey " + pub1 + " is of log " + origin1 + ", of host node-1, but the log in " + other + " is not the log this key is for (replaced or wiped): it is log " + originOf(t, other) + "\n"},
		{"replaced by an unsigned log", []string{"--pubkey", pub1, "--pubkey", pub2, plain, node2},
			"FAIL: host node-1: --pubkey " + pub1 + " is of log " + origin1 + ", of host node-1, but the log in " + plain + " is not the log this key is for (replaced or wiped): it has no checkpoint (it is not signed)\n"},
	} {
		code, got, _ := runOut(t, append([]string{"audit", "verify", "--no-progress"}, tc.args...), nil)
		if code != exitFailed || !strings.Contains(got, tc.want) || !strings.HasSuffix(got, "FAIL: 1 of 2 hosts failed: node-1\n") {
			t.Errorf("%s: exit %d\n%s\nwant a line starting %s", tc.name, code, got, tc.want)
		}
	}
	// Checkpoints alone (no key of node-1) are anyone's claim: the empty
	// log is UNVERIFIED, and the claim told apart.
	code, got, _ := runOut(t, []string{"audit", "verify", "--no-progress", "--pubkey", pub2, "--checkpoint", collected, node1, node2}, nil)
	if want := "UNVERIFIED: host node-1: the log holds no record, so nothing of its host is checked; a running hostpass writes audit.start first, so an empty log was set up and never run, or wiped\nUNVERIFIED: host node-1: the collector holds checkpoints of another log calling itself node-1 (origin " + origin1 + ", " + collected + " line "; code != exitUnverified || !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "UNVERIFIED: 1 of 2 hosts not checked in full (UNVERIFIED above): node-1\n") {
		t.Errorf("wiped, checkpoints alone: exit %d\n%s\nwant %s", code, got, want)
	}
	// Without key or checkpoint, an empty log is not "ok".
	code, got, _ = runOut(t, []string{"audit", "verify", "--no-progress", "--chain-only", node1, node2}, nil)
	if want := "UNVERIFIED: host - (" + node1 + "): the log holds no record"; code != exitUnverified || !strings.HasPrefix(got, want) {
		t.Errorf("an empty log alone: exit %d\n%s\nwant %s", code, got, want)
	}
}

// With --checkpoint, a signed host none of whose checkpoints was given
// (it stopped sending them, then cut its tail) is UNVERIFIED, named.
func TestFleetVerifyHostWithoutCollectedCheckpoints(t *testing.T) {
	node1, pub1 := signedHost(t, "node-1")
	node2, pub2 := signedHost(t, "node-2")
	only2 := collectorFileOf(t, nil, node2)
	code, got, _ := runOut(t, []string{"audit", "verify", "--no-progress", "--pubkey", pub1, "--pubkey", pub2, "--checkpoint", only2, node1, node2}, nil)
	want := "UNVERIFIED: host node-1: no collected checkpoint of its log (" + originOf(t, node1) + ") was given (--checkpoint " + only2 + "): "
	if code != exitUnverified || !strings.Contains(got, want) || !strings.HasSuffix(got, "UNVERIFIED: 1 of 2 hosts not checked in full (UNVERIFIED above): node-1\n") {
		t.Errorf("exit %d\n%s\nwant %s", code, got, want)
	}
}

// A checkpoint line another host sent with node-1's origin: node-1's
// failure names the sender; a checkpoint of a log not given is listed as
// not checked (UNVERIFIED), and the run goes on.
func TestFleetVerifyNamesCheckpointSender(t *testing.T) {
	node1, pub1 := signedHost(t, "node-1")
	node2, pub2 := signedHost(t, "node-2")
	node3, _ := signedHost(t, "node-3")
	note, _ := json.Marshal(originOf(t, node1) + "\njunk\n")
	rec := `{"time":"2026-11-27T10:00:00Z","seq":3,"event":"audit.checkpoint","host":"node-3","checkpoint":` + string(note) + `}`
	forged := fmt.Sprintf(`<86>1 2026-11-27T10:00:00.000000Z node-3 hostpass 4242 audit.checkpoint [hostpass@32473 seq="3" prev="a" hash="b"] %s`, rec)
	collected := collectorFileOf(t, []string{forged}, node1, node2)
	code, got, _ := runOut(t, []string{"audit", "verify", "--no-progress", "--pubkey", pub1, "--pubkey", pub2, "--checkpoint", collected, node1, node2}, nil)
	want := "FAIL: host node-1: " + collected + " line 1: bad checkpoint: sent by node-3 (the collector's HOSTNAME for that line), not by node-1, whose log this is: "
	if code != exitFailed || !strings.HasPrefix(got, want) {
		t.Errorf("forged checkpoint: exit %d\n%s\nwant %s", code, got, want)
	}
	// One log's verify prints what it always printed.
	code, got, _ = runOut(t, []string{"audit", "verify", "--no-progress", "--pubkey", pub1, "--checkpoint", collected, node1}, nil)
	if want := "FAIL: " + collected + " line 1: bad checkpoint: collected checkpoint: checkpoint refused: "; code != exitFailed || !strings.HasPrefix(got, want) {
		t.Errorf("one log: exit %d\n%s\nwant %s", code, got, want)
	}
	third := collectorFileOf(t, nil, node1, node2, node3)
	code, got, _ = runOut(t, []string{"audit", "verify", "--no-progress", "--pubkey", pub1, "--pubkey", pub2, "--checkpoint", third, node1, node2}, nil)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	want = "UNVERIFIED: collected checkpoint of log \"" + originOf(t, node3) + "\" (" + third + " line "
	if code != exitUnverified || !strings.HasPrefix(lines[0], "ok: host node-1: ") || !strings.HasPrefix(lines[1], "ok: host node-2: ") || !strings.HasPrefix(lines[2], want) ||
		!strings.Contains(lines[2], ", sent by node-3): of none of the DIRs' logs or hosts, so not checked") ||
		!strings.HasPrefix(lines[len(lines)-1], "UNVERIFIED: 2 hosts verified, but ") {
		t.Errorf("a checkpoint of a log not given: exit %d\n%s\nwant %s", code, got, want)
	}
}

// Fleet verify's refusals, each naming what was refused.
func TestFleetVerifyRefusals(t *testing.T) {
	node1, pub1 := signedHost(t, "node-1")
	node2, pub2 := signedHost(t, "node-2")
	plain1, _ := fleetDirs(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(plain1, link); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(t.TempDir(), "copy")
	if err := os.Mkdir(copied, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(copied, "audit.jsonl"), read(t, plain1, "audit.jsonl"), 0o640); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	collected := collectorFileOf(t, nil, node1, node2)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--checkpoint", collected, node1, node2}, exitUsage, "hostpass audit verify: --checkpoint without --pubkey: "},
		{[]string{"--pubkey", pub1, "--pubkey", pub1, "--pubkey", pub2, node1, node2}, exitUsage, "hostpass audit verify: --pubkey " + pub1 + ": a second key of log " + originOf(t, node1) + " (host node-1, " + node1 + "), which " + pub1 + " gave already"},
		{[]string{plain1, plain1 + "/"}, exitUsage, "hostpass audit verify: " + plain1 + " and " + plain1 + "/ hold the same log (file "},
		{[]string{plain1, link}, exitUsage, "hostpass audit verify: " + plain1 + " and " + link + " hold the same log (file "},
		{[]string{plain1, copied}, exitUsage, "hostpass audit verify: " + plain1 + " and " + copied + " hold the same log (first record's hash "},
		{[]string{plain1, filepath.Join(plain1, "audit.jsonl")}, exitUsage, "hostpass audit verify: " + plain1 + " is a DIR and " + filepath.Join(plain1, "audit.jsonl") + " a FILE: verify takes one log's FILEs, or several hosts' DIRs"},
		{[]string{empty, plain1}, exitFailed, "hostpass audit verify: " + empty + " holds no audit log: a DIR must hold one host's log, audit.jsonl (or another *.jsonl) and the files rotated from it\n"},
	} {
		code, got, _ := runOut(t, append([]string{"audit", "verify", "--no-progress"}, tc.args...), nil)
		if code != tc.code || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%v: exit %d\n%s\nwant exit %d, %s", tc.args, code, got, tc.code, tc.want)
		}
	}
}

// stableOut is a fleet verify's output for a golden: fresh keys make each
// run's hashes and roots new, so an ok line keeps its host and what it
// says was (not) checked, not its counts and hashes.
func stableOut(got string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(got, "\n") {
		if rest, ok := strings.CutPrefix(l, "ok: host "); ok {
			host, _, _ := strings.Cut(rest, ": ")
			l = "ok: host " + host + ": ...\n"
		}
		b.WriteString(l)
	}
	return b.String()
}

// Issue 12's review: a signed log checked by its chain alone (no key,
// --chain-only) is UNVERIFIED, named in the summary; never a final ok.
func TestFleetVerifyChainOnlySignedUnverified(t *testing.T) {
	node1, pub1 := signedHost(t, "node-1")
	node2, _ := signedHost(t, "node-2")
	names := map[string]string{node1: "$NODE1", node2: "$NODE2", pub1: "$NODE1.pub"}
	code, got, shown := runOut(t, []string{"audit", "verify", "--no-progress", "--pubkey", pub1, "--chain-only", node1, node2}, names)
	if code != exitUnverified || !strings.Contains(got, "UNVERIFIED: host node-2: 11 records in 1 file(s), seq 1-11, ") || !strings.Contains(got, "hashes and signatures NOT checked (--chain-only): content unverified") ||
		!strings.HasSuffix(got, "UNVERIFIED: 1 of 2 hosts not checked in full (UNVERIFIED above): node-2\n") {
		t.Errorf("exit %d, want %d\n%s", code, exitUnverified, got)
	}
	lines := strings.Split(got, "\n")
	lines[1] = "UNVERIFIED: host node-2: (counts, root and hash of this run)"
	checkGolden(t, "audit-verify-fleet-chain-only-signed", shown, []byte(stableOut(strings.Join(lines, "\n"))))
}

// Issue 12's review: a second log calling itself node-1 sends checkpoints
// to the collector. node-1's own log is still verified in full with its
// key and its own checkpoints; the other log's checkpoints are a separate
// UNVERIFIED finding (anyone can send them), not node-1's FAIL.
func TestFleetVerifySecondLogUnderHostName(t *testing.T) {
	node1, pub1 := signedHost(t, "node-1")
	node2, pub2 := signedHost(t, "node-2")
	impostor, _ := signedHost(t, "node-1")
	collected := collectorFileOf(t, nil, node1, node2, impostor)
	names := map[string]string{node1: "$NODE1", node2: "$NODE2", pub1: "$NODE1.pub", pub2: "$NODE2.pub", collected: "$COLLECTOR/received.log",
		originOf(t, impostor): "hostpass/node-1/$OTHER"}
	code, got, shown := runOut(t, []string{"audit", "verify", "--no-progress", "--pubkey", pub1, "--pubkey", pub2, "--checkpoint", collected, node1, node2}, names)
	lines := strings.Split(got, "\n")
	want := "UNVERIFIED: host node-1: the collector holds checkpoints of another log calling itself node-1 (origin hostpass/node-1/$OTHER, $COLLECTOR/received.log line "
	if code != exitUnverified || len(lines) != 5 || !strings.HasPrefix(lines[0], "ok: host node-1: ") || !strings.Contains(lines[0], "collected checkpoint(s) proven consistent") ||
		!strings.HasPrefix(lines[1], want) || !strings.Contains(lines[1], ", sent by node-1 as the collector recorded it, which the sender chooses; and ") ||
		!strings.HasSuffix(lines[1], "): a second log under this host name, or a replaced log; this host's own log is reported on above") ||
		!strings.HasPrefix(lines[2], "ok: host node-2: ") || lines[3] != "UNVERIFIED: 1 of 2 hosts not checked in full (UNVERIFIED above): node-1" {
		t.Errorf("exit %d, want %d\n%s\nwant node-1 verified, then %s", code, exitUnverified, got, want)
	}
	checkGolden(t, "audit-verify-fleet-second-log", shown, []byte(stableOut(got)))
	// node-1's own log edited: its own FAIL still shows, exit 1.
	edited := filepath.Join(node1, "audit.jsonl")
	b := read(t, node1, "audit.jsonl")
	recs := strings.SplitAfter(string(b), "\n")
	recs[1] = strings.Replace(recs[1], "2026-11-27", "2026-11-26", 1)
	if err := os.WriteFile(edited, []byte(strings.Join(recs, "")), 0o640); err != nil {
		t.Fatal(err)
	}
	code, got, _ = runOut(t, []string{"audit", "verify", "--no-progress", "--pubkey", pub1, "--pubkey", pub2, "--checkpoint", collected, node1, node2}, names)
	if code != exitFailed || !strings.HasPrefix(got, "FAIL: host node-1: $NODE1/audit.jsonl line 2") || !strings.Contains(got, "\n"+want) {
		t.Errorf("node-1 edited: exit %d, want %d\n%s", code, exitFailed, got)
	}
}

// Issue 12's review: node-1 replaced its log with a fresh one under a
// new host name (node-1b). node-1's key matches no DIR: the run names the
// missing log and ends UNVERIFIED, not a usage error that reads "drop the
// key"; --chain-only does not make it pass.
func TestFleetVerifyKeyOfNoDIR(t *testing.T) {
	_, pub1 := signedHost(t, "node-1")
	renamed, _ := signedHost(t, "node-1b")
	node2, pub2 := signedHost(t, "node-2")
	names := map[string]string{renamed: "$NODE1", node2: "$NODE2", pub1: "$NODE1.pub", pub2: "$NODE2.pub",
		originOf(t, renamed): "hostpass/node-1b/$NEW", originOf(t, node2): "hostpass/node-2/$NODE2", audit.PubOrigin(mustPub(t, pub1)): "hostpass/node-1/$OLD"}
	for _, chainOnly := range []bool{false, true} {
		args := []string{"audit", "verify", "--no-progress", "--pubkey", pub1, "--pubkey", pub2, renamed, node2}
		if chainOnly {
			args = append(args[:3], append([]string{"--chain-only"}, args[3:]...)...)
		}
		code, got, shown := runOut(t, args, names)
		want := "UNVERIFIED: --pubkey $NODE1.pub: no DIR holds log hostpass/node-1/$OLD (host node-1): its log is missing, or was replaced (a DIR's log under another name? theirs: hostpass/node-1b/$NEW, "
		if code != exitUnverified || !strings.Contains(got, want) || !strings.Contains(got, "do not drop the key: name the host's DIR\n") ||
			!strings.HasSuffix(got, "UNVERIFIED: 1 of 2 hosts not checked in full (UNVERIFIED above): node-1b; 1 key(s) of a log no DIR holds: node-1 (--pubkey $NODE1.pub)\n") {
			t.Errorf("chain-only %v: exit %d, want %d\n%s\nwant %s", chainOnly, code, exitUnverified, got, want)
		}
		if chainOnly {
			lines := strings.Split(got, "\n")
			lines[0] = "UNVERIFIED: host node-1b: (counts, root and hash of this run)"
			checkGolden(t, "audit-verify-fleet-key-of-no-dir", shown, []byte(stableOut(strings.Join(lines, "\n"))))
		}
	}
}

func mustPub(t *testing.T, f string) note.Verifier {
	t.Helper()
	v, err := audit.ReadSignPub(f)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		{"wiped, checkpoints alone name it", []string{"--pubkey", pub2, "--checkpoint", collected, node1, node2},
			"FAIL: host node-1: the checkpoint (" + collected + " line "},
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
	// Without key or checkpoint, an empty log is not "ok".
	code, got, _ := runOut(t, []string{"audit", "verify", "--no-progress", "--chain-only", node1, node2}, nil)
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

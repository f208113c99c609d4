//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sealedDaemon starts bin/hostpass on an empty log in dir, sealing with
// keyFile and evolving the key every 3 records, and has `hostpass bench`
// make calls on it.
func sealedDaemon(t *testing.T, dir, keyFile string) *daemon {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, dir, "--seal-key", keyFile, "--seal-epoch-records", "3", "--watch=false")
}

// sealingKeys makes a sealing key in dir with `hostpass audit keygen`:
// initial.key, the auditor's copy, kept apart, and seal.key, the daemon's,
// which evolves as the daemon seals.
func sealingKeys(t *testing.T, dir string) (initial, daemonKey string) {
	t.Helper()
	initial, daemonKey = filepath.Join(dir, "initial.key"), filepath.Join(dir, "seal.key")
	run(t, hostpassBin(t), "audit", "keygen", initial)
	b, err := os.ReadFile(initial)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(daemonKey, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return initial, daemonKey
}

func benchCalls(t *testing.T, d *daemon, calls int) {
	t.Helper()
	run(t, hostpassBin(t), "bench", "--socket", d.sock, "--calls", fmt.Sprint(calls), "--clients", "2")
}

// verifyFails runs `hostpass audit verify` and returns its output; it fails
// the test unless verify exits 1.
func verifyFails(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(hostpassBin(t), append([]string{"audit", "verify"}, args...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("hostpass audit verify %v: %v, want exit 1\n%s", args, err, out)
	}
	return string(out)
}

func keyEpoch(t *testing.T, path string) uint64 {
	t.Helper()
	var kf struct{ Epoch uint64 }
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &kf); err != nil {
		t.Fatalf("key file %s: %v", path, err)
	}
	return kf.Epoch
}

// TestSealedLogOnRealDocker seals the log of a real dockerd's calls with a
// key that evolves every 3 records: the initial key, kept apart, verifies
// it; the daemon's own key file has moved on and cannot.
func TestSealedLogOnRealDocker(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	initial, daemonKey := sealingKeys(t, e.dir)

	p := newLegacyPlugin(t, e)
	p.extra = []string{"--seal-key", daemonKey, "--seal-epoch-records", "3"}
	p.start(t)
	e.docker(t, "network", "create", "-d", p.name, "n-sealed")
	e.docker(t, "run", "--rm", "--network", "n-sealed", image, "true")
	e.docker(t, "run", "--rm", "--network", "n-sealed", image, "true")
	waitCount(t, p.audit, 9)
	p.stop(t)

	if out := verifyLog(t, "--key", initial, p.audit); !strings.Contains(out, "seals verified, epochs 0-") {
		t.Errorf("verify --key: %s", out)
	}
	out, err := exec.Command(hostpassBin(t), "audit", "verify", "--key", daemonKey, p.audit).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "verify needs the initial key (epoch 0)") {
		t.Errorf("verify with the daemon's evolved key: %v\n%s\nwant a refusal naming the initial key", err, out)
	}
	if markers := filter(readAudit(t, p.audit), byEvent("audit.epoch", "ok")); len(markers) < 2 {
		t.Errorf("want an audit.epoch record every 3 records, got %d", len(markers))
	}
}

// TestForgedLogFromTheLiveKeyDoesNotVerify is the attack of issue 7, item 3:
// whoever holds the daemon's key file copies it and starts hostpass on an
// empty log. Every seal of that log is good under the initial key stepped
// forward; verify --key must still refuse it.
func TestForgedLogFromTheLiveKeyDoesNotVerify(t *testing.T) {
	hostpassBin(t)
	dir := t.TempDir()
	initial, daemonKey := sealingKeys(t, dir)

	real := sealedDaemon(t, filepath.Join(dir, "real"), daemonKey)
	benchCalls(t, real, 12)
	real.terminate()
	epoch := keyEpoch(t, daemonKey)
	if epoch == 0 {
		t.Fatal("the daemon's key did not evolve")
	}
	if out := verifyLog(t, "--key", initial, real.audit); !strings.Contains(out, "seals verified, epochs 0-") {
		t.Fatalf("the real log: %s", out)
	}

	stolen := filepath.Join(dir, "stolen.key")
	b, _ := os.ReadFile(daemonKey)
	os.WriteFile(stolen, b, 0o600)
	forger := sealedDaemon(t, filepath.Join(dir, "forged"), stolen)
	benchCalls(t, forger, 12)
	forger.terminate()

	out := verifyFails(t, "--key", initial, forger.audit)
	want := fmt.Sprintf("FAIL: %s line 1 (seq 1): late start: the genesis record is sealed in epoch %d, not epoch 0: "+
		"a log starts in epoch 0, so this one was started with a later key, as whoever holds the daemon's key file can do; "+
		"if you know from elsewhere (a syslog collector, an earlier verify) where the log starts, pass --start SEQ:HASH with that record's seq and hash\n",
		forger.audit, epoch)
	if out != want {
		t.Fatalf("verify --key INITIAL of the forged log:\n got %q\nwant %q", out, want)
	}
}

// TestLogWithoutItsOldestFilesVerifiesOnlyFromAGivenStart: rotated files
// removed, verify --key refuses the log until --start says where it starts,
// and then says so.
func TestLogWithoutItsOldestFilesVerifiesOnlyFromAGivenStart(t *testing.T) {
	hostpassBin(t)
	dir := t.TempDir()
	initial, daemonKey := sealingKeys(t, dir)

	d := sealedDaemon(t, dir, daemonKey)
	benchCalls(t, d, 8)
	d.signal(t, syscall.SIGHUP)
	var rotated []string
	for deadline := time.Now().Add(5 * time.Second); len(rotated) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rotated, _ = filepath.Glob(d.audit + ".0*")
	}
	if len(rotated) != 1 {
		t.Fatalf("no rotated file after SIGHUP: %v", rotated)
	}
	benchCalls(t, d, 8)
	d.terminate()
	os.Remove(rotated[0])

	var first struct {
		Seq   uint64  `json:"seq"`
		Epoch *uint64 `json:"epoch"`
		Hash  string  `json:"hash"`
	}
	json.Unmarshal([]byte(readAudit(t, d.audit)[0].line), &first)
	out := verifyFails(t, "--key", initial, d.audit)
	if want := fmt.Sprintf("(seq %d): missing start: the log starts at seq %d, not at the genesis record: its oldest files are gone", first.Seq, first.Seq); !strings.Contains(out, want) {
		t.Fatalf("verify without its oldest file: %s\nwant %q", out, want)
	}
	out = verifyLog(t, "--key", initial, "--start", fmt.Sprintf("%d:%s", first.Seq, first.Hash), d.audit)
	if want := fmt.Sprintf("starts at seq %d (epoch %d) as you said; records before it were not checked", first.Seq, *first.Epoch); !strings.Contains(out, want) {
		t.Fatalf("verify --start: %s\nwant %q", out, want)
	}
}

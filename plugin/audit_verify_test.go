package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// sealedLog writes a sealed log of a few records and returns its path and
// the initial key file.
func sealedLog(t *testing.T) (path, initial string) {
	t.Helper()
	dir := t.TempDir()
	initial = filepath.Join(dir, "initial.key")
	if err := audit.NewKeyFile(initial); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(initial)
	daemon := filepath.Join(dir, "daemon.key")
	os.WriteFile(daemon, b, 0o600)
	path = filepath.Join(dir, "audit.jsonl")
	l, err := audit.OpenWith(path, audit.Options{SealKey: daemon})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := l.Append(audit.Record{Time: time.Now().UTC(), Event: audit.EndpointJoin, Outcome: audit.OK, NetworkID: "net1"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return path, initial
}

// A sealed log checked without --key is not "ok": a sealed record's hash is
// its seal, so an edited record goes unseen. verify says so and exits 3,
// unless --chain-only says that check is what the user wants.
func TestVerifyOfASealedLogWithoutTheKeyIsUnverified(t *testing.T) {
	path, initial := sealedLog(t)
	b, _ := os.ReadFile(path)
	edited := strings.Replace(string(b), `"network_id":"net1"`, `"network_id":"EVIL"`, 1)
	os.WriteFile(path, []byte(edited), 0o640)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{"no key", []string{"audit", "verify", path}, 3, "UNVERIFIED: 4 records in 1 file(s), seq 1-4: the log is sealed and seals NOT checked: content unverified"},
		{"chain only", []string{"audit", "verify", "--chain-only", path}, 0, "chain intact, sealed, seals NOT checked (--chain-only): content unverified"},
		{"key", []string{"audit", "verify", "--key", initial, path}, 1, "FAIL: " + path + " line 1 (seq 1): bad key"},
		{"both", []string{"audit", "verify", "--key", initial, "--chain-only", path}, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("hostpass %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q", tc.args, code, out.String(), errOut.String(), tc.code, tc.stdout)
			}
		})
	}
	os.WriteFile(path, b, 0o640)
	var out, errOut bytes.Buffer
	if code := run([]string{"audit", "verify", "--key", initial, path}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "seals verified, epochs 0-0") {
		t.Errorf("the intact log under its key: %d\n%s%s", code, out.String(), errOut.String())
	}
}

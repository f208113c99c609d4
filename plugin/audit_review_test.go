package main

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

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

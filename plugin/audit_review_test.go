package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
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

package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with what the commands print now")

// TestGolden compares what a user reads with testdata/*.golden; run with
// -update after a deliberate change, and review the diff.
func TestGolden(t *testing.T) {
	// The built-in defaults, whatever the environment says.
	for _, s := range settings(&serveOptions{}) {
		t.Setenv(s.env, "")
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"help", []string{"--help"}},
		{"serve-help", []string{"serve", "--help"}},
		{"audit-help", []string{"audit", "--help"}},
		{"audit-show-help", []string{"audit", "show", "--help"}},
		{"audit-verify-help", []string{"audit", "verify", "--help"}},
		{"audit-sessions-help", []string{"audit", "sessions", "--help"}},
		{"bench-help", []string{"bench", "--help"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(tc.args, &out, &out); code != 0 {
				t.Fatalf("hostpass %q = %d\n%s", tc.args, code, out.String())
			}
			checkGolden(t, tc.name, tc.args, out.Bytes())
		})
	}
}

// checkGolden compares got, what `hostpass args` printed, with
// testdata/NAME.golden, or rewrites that file under -update.
func checkGolden(t *testing.T, name string, args []string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("hostpass %q prints:\n%s\nwant (%s; if the change is deliberate, run go test ./plugin/ -update and review the diff):\n%s", args, got, path, want)
	}
}

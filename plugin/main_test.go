package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	t.Setenv("HOSTPASS_AUDIT_LOG", "/srv/audit/hp.jsonl")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"version", []string{"version"}, 0, "hostpass dev (commit unknown)", ""},
		{"no command", nil, 2, "", "Usage:"},
		{"unknown command", []string{"frob"}, 2, "", `unknown command "frob"; commands: serve, audit, bench, version, help`},
		{"help lists settings", []string{"--help"}, 0, "HOSTPASS_STATE_DIR", ""},
		{"serve help shows env default", []string{"serve", "--help"}, 0, `(default "/srv/audit/hp.jsonl")`, ""},
		{"bad log level", []string{"serve", "--log-level", "loud"}, 2, "", `unknown log level "loud"; accepted: panic, fatal, error, warning, info, debug, trace`},
		{"unknown flag", []string{"serve", "--mtu", "9000"}, 2, "", "flag provided but not defined: -mtu"},
		{"stray argument", []string{"serve", "now"}, 2, "", `unexpected argument "now"`},
		{"bad size", []string{"serve", "--audit-max-size", "big"}, 2, "", `--audit-max-size: "big" is not a size: want bytes, or a number with KiB, MiB or GiB (64MiB)`},
		{"bad epoch", []string{"serve", "--seal-epoch-records", "0"}, 2, "", `--seal-epoch-records: "0" is not a whole number of records, 1 or more`},
		{"bad interval", []string{"serve", "--seal-epoch-interval", "soon"}, 2, "", `--seal-epoch-interval: "soon" is not a positive duration`},
		{"bad watch", []string{"serve", "--watch", "maybe"}, 2, "", `--watch: "maybe" is not true or false`},
		{"bad policy", []string{"serve", "--policy-allow", "team=web"}, 2, "", `--policy-allow: policy rule "team=web": want all, or rules label:KEY=VALUE, label:KEY or image:PATTERN separated by commas`},
		{"bad policy-stop", []string{"serve", "--policy-stop", "yes please"}, 2, "", `--policy-stop: "yes please" is not true or false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errOut.String(), tc.stderr) {
				t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
					tc.args, code, out.String(), errOut.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestListenReplacesStaleSocketButNotALiveOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hp.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // what a killed daemon leaves behind
	if _, err := os.Stat(path); err != nil {
		t.Fatal("want a stale socket file")
	}
	l, err := listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Close()
	if _, err := listen(path); err == nil || !strings.Contains(err.Error(), "is in use by a running daemon") {
		t.Fatalf("second listen: got %v, want a refusal naming the live socket", err)
	}
}

//go:build linux

package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The checkpoint schedule is refused below a second, and without
// --sign-key, where it would do nothing: exit 2, naming the setting, and
// nothing created. Before, both were taken in silence.
func TestServeCheckpointScheduleRefused(t *testing.T) {
	signKey := filepath.Join(t.TempDir(), "sign.key")
	if code := run([]string{"audit", "keygen", "--sign", "--host", "web-1", signKey}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("keygen --sign: exit %d", code)
	}
	const under = " is less than a second: each checkpoint is a signed record, fsynced, and verify allows a heartbeat a second of slack; give 1s or more, such as 30s or 1m"
	for _, tc := range []struct {
		name      string
		env, args []string
		stderr    string
	}{
		{"heartbeat under a second", nil, []string{"--sign-key", signKey, "--heartbeat", "500ms"},
			`hostpass serve: --heartbeat: "500ms"` + under},
		{"checkpoint interval under a second", []string{"HOSTPASS_CHECKPOINT_INTERVAL", "999ms"}, []string{"--sign-key", signKey},
			`hostpass serve: --checkpoint-interval: "999ms"` + under},
		{"heartbeat without a signing key", nil, []string{"--heartbeat", "1m"},
			"hostpass serve: --heartbeat has no effect without --sign-key (HOSTPASS_SIGN_KEY): checkpoints are written by a signing daemon only; give --sign-key FILE too, or leave --heartbeat unset (or at its default)"},
		{"the default, given, without a signing key", nil, []string{"--checkpoint-records", "1000", "--checkpoint-interval", "1m"},
			"hostpass serve: --checkpoint-records and --checkpoint-interval have no effect without --sign-key (HOSTPASS_SIGN_KEY): checkpoints are written by a signing daemon only; give --sign-key FILE too, or leave --checkpoint-records and --checkpoint-interval unset (or at their defaults)"},
		{"variable without a signing key", []string{"HOSTPASS_CHECKPOINT_RECORDS", "500"}, nil,
			"hostpass serve: HOSTPASS_CHECKPOINT_RECORDS has no effect without --sign-key (HOSTPASS_SIGN_KEY): checkpoints are written by a signing daemon only; give --sign-key FILE too, or leave HOSTPASS_CHECKPOINT_RECORDS unset (or at its default)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv(tc.env[0], tc.env[1])
			}
			dir := t.TempDir()
			args := append([]string{"serve", "--socket", filepath.Join(dir, "hp.sock"), "--audit-log", filepath.Join(dir, "log", "audit.jsonl"),
				"--state-dir", filepath.Join(dir, "state")}, tc.args...)
			var out, errOut bytes.Buffer
			code := run(args, &out, &errOut)
			if code != 2 || strings.TrimSpace(errOut.String()) != tc.stderr {
				t.Errorf("hostpass %q = %d\nstderr: %s\nwant 2, stderr %q", args, code, errOut.String(), tc.stderr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("hostpass %q created %v; want nothing before the settings are checked", args, entries)
			}
		})
	}
}

// A managed plugin's config.json sets every variable, at its default: that
// is not "given", and a plugin without a signing key must start.
func TestServeCheckpointDefaultsAreNotGiven(t *testing.T) {
	for _, s := range settings(&serveOptions{}) {
		t.Setenv(s.env, s.def)
	}
	cmd := newServeCommand()
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if got := given(cmd.Flags(), settings(&serveOptions{}), signOnlySettings); len(got) != 0 {
		t.Errorf("given = %q, want none: every variable is at its default", got)
	}
	// The defaults written another way are the defaults.
	t.Setenv("HOSTPASS_HEARTBEAT", "300s")
	t.Setenv("HOSTPASS_CHECKPOINT_INTERVAL", "60s")
	t.Setenv("HOSTPASS_CHECKPOINT_RECORDS", "01000")
	if got := given(cmd.Flags(), settings(&serveOptions{}), signOnlySettings); len(got) != 0 {
		t.Errorf("given = %q, want none: 300s, 60s and 01000 are the defaults 5m, 1m and 1000", got)
	}
	t.Setenv("HOSTPASS_CHECKPOINT_RECORDS", "1000")
	t.Setenv("HOSTPASS_HEARTBEAT", "10m")
	if err := cmd.ParseFlags([]string{"--checkpoint-records", "1000"}); err != nil {
		t.Fatal(err)
	}
	if got, want := given(cmd.Flags(), settings(&serveOptions{}), signOnlySettings), []string{"--checkpoint-records", "HOSTPASS_HEARTBEAT"}; !reflect.DeepEqual(got, want) {
		t.Errorf("given = %q, want %q", got, want)
	}
}

package driver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"golang.org/x/sys/unix"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/audit/schematest"
)

// sandboxKeys makes a key of each kind under a stand-in exec root and
// returns them by the state Join should record. The live key is a bind
// mount of this process's network namespace, as Docker and `ip netns` make
// one: it needs root, and is left out, with the reason, without it.
func sandboxKeys(t *testing.T) (map[string]string, string) {
	t.Helper()
	execRoot := t.TempDir()
	netns := filepath.Join(execRoot, "netns")
	if err := os.Mkdir(netns, 0o755); err != nil {
		t.Fatal(err)
	}
	placeholder := filepath.Join(netns, "0000000000aa") // the empty file Docker mounts a namespace on
	if err := os.WriteFile(placeholder, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	// An engine before its first namespace: exec root and libnetwork/, no netns/.
	fresh := t.TempDir()
	if err := os.Mkdir(filepath.Join(fresh, "libnetwork"), 0o700); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{
		"absent":              filepath.Join(netns, "0000000000bb"),
		"absent, first":       filepath.Join(fresh, "netns", "0000000000cc"),
		"not_netns":           placeholder,
		"unseen":              filepath.Join(t.TempDir(), "no-exec-root", "netns", "0000000000dd"),
		"unseen, plugin root": filepath.Join(t.TempDir(), "netns", "0000000000ee"), // a folder, but not Docker's exec root
	}
	if os.Geteuid() != 0 {
		return keys, "a live key needs root, to bind-mount a network namespace; skipped"
	}
	live := filepath.Join(netns, "0000000000ff")
	if err := os.WriteFile(live, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/proc/self/ns/net", live, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount a network namespace on %s: %v", live, err)
	}
	t.Cleanup(func() { unix.Unmount(live, unix.MNT_DETACH) })
	keys["live"] = live
	return keys, ""
}

func TestSandboxState(t *testing.T) {
	keys, skipped := sandboxKeys(t)
	if skipped != "" {
		t.Log(skipped)
	}
	for name, key := range keys {
		want, _, _ := strings.Cut(name, ",")
		if got := sandboxState(key); got != want {
			t.Errorf("%s key %s: sandbox %q, want %q", name, key, got, want)
		}
	}
	for _, key := range []string{"", "netns/0123456789ab"} {
		if got := sandboxState(key); got != "" {
			t.Errorf("key %q: sandbox %q, want none: it names nothing here", key, got)
		}
	}
}

// Join records each state in "sandbox", and every such record validates
// against docs/audit.schema.json, whose enum is audit.SandboxStates.
func TestJoinRecordsSandbox(t *testing.T) {
	keys, skipped := sandboxKeys(t)
	if skipped != "" {
		t.Log(skipped)
	}
	d, path := newDriver(t)
	want := map[string]string{} // endpoint -> state
	i := 0
	for name, key := range keys {
		i++
		ep := netID(i)
		want[ep], _, _ = strings.Cut(name, ",")
		if _, err := d.Join(&network.JoinRequest{NetworkID: netID(100), EndpointID: ep, SandboxKey: key}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range records(t, path) {
		if r.Event == audit.EndpointJoin && r.Sandbox != want[r.EndpointID] {
			t.Errorf("join of %s (key %s): sandbox %q, want %q", r.EndpointID, r.SandboxKey, r.Sandbox, want[r.EndpointID])
		}
	}
	schematest.Check(t, schematest.Lines(t, path))

	b, err := os.ReadFile(schematest.Path())
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Sandbox struct{ Enum []string } `json:"sandbox"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(schema.Properties.Sandbox.Enum, audit.SandboxStates) {
		t.Errorf("docs/audit.schema.json's \"sandbox\" values %q, audit.SandboxStates %q", schema.Properties.Sandbox.Enum, audit.SandboxStates)
	}
}

// BenchmarkJoin is Join with its fsynced record, the key naming a path in a
// directory that exists (Docker's netns folder before the namespace is made).
func BenchmarkJoin(b *testing.B) {
	d, _ := newDriver(b)
	key := filepath.Join(b.TempDir(), "0123456789ab")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ep := fmt.Sprintf("%064x", i)
		if _, err := d.Join(&network.JoinRequest{NetworkID: netID(1), EndpointID: ep, SandboxKey: key}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSandboxState is the look Join adds, for each kind of key.
func BenchmarkSandboxState(b *testing.B) {
	dir := b.TempDir()
	for _, bc := range []struct{ name, key string }{
		{"absent", filepath.Join(dir, "0123456789ab")},
		{"unseen", filepath.Join(dir, "none", "netns", "0123456789ab")},
		{"netns", "/proc/self/ns/net"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sandboxState(bc.key)
			}
		})
	}
}

package driver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	// A symlink at the key is looked at, not followed: here to this
	// process's own network namespace, which needs no root.
	symlink := filepath.Join(netns, "0000000000a1")
	if err := os.Symlink("/proc/self/ns/net", symlink); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(execRoot, "containers") // a folder not named netns
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{
		"absent":              filepath.Join(netns, "0000000000bb"),
		"absent, first":       filepath.Join(fresh, "netns", "0000000000cc"),
		"not_netns":           placeholder,
		"not_netns, symlink":  symlink,
		"unseen":              filepath.Join(t.TempDir(), "no-exec-root", "netns", "0000000000dd"),
		"unseen, plugin root": filepath.Join(t.TempDir(), "netns", "0000000000ee"), // a folder, but not Docker's exec root
		// Keys not of Docker's shape, EXEC_ROOT/netns/NAME: not looked at.
		"unseen, dotdot":        netns + "/../netns/0000000000aa",
		"unseen, double slash":  netns + "//0000000000bb",
		"unseen, own namespace": "/proc/self/ns/net",
		"unseen, root":          "/x-no-such",
		"unseen, other folder":  filepath.Join(other, "0000000000bb"),
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

// The look at the key has lookBudget: a look that does not answer (a key
// on a hung NFS mount) leaves "unseen" and the Join goes on; while it is
// stuck, later Joins start no other look and say "unseen" at once; once it
// returns, the next Join looks again.
func TestJoinSandboxLookBounded(t *testing.T) {
	var looks atomic.Int32
	started, release := make(chan struct{}, 10), make(chan struct{})
	lookSandbox = func(string) string {
		looks.Add(1)
		started <- struct{}{}
		<-release
		return audit.SandboxLive
	}
	var once sync.Once
	unstick := func() {
		once.Do(func() { close(release) })
		lookSlot <- struct{}{} // wait for the stuck look to return its slot
		<-lookSlot
	}
	t.Cleanup(func() {
		unstick()
		lookSandbox = lookAtKey
	})

	d, path := newDriver(t)
	key := filepath.Join(t.TempDir(), "netns", "0123456789ab")
	join := func(ep string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := d.Join(&network.JoinRequest{NetworkID: netID(100), EndpointID: ep, SandboxKey: key})
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second): // a hang guard, not a speed check
			t.Fatalf("Join of %s waits for a stuck look at its key", ep)
		}
	}
	join(netID(1))
	<-started
	join(netID(2))
	if n := looks.Load(); n != 1 {
		t.Errorf("%d looks started while one was stuck, want 1", n)
	}
	unstick()
	join(netID(3))
	if n := looks.Load(); n != 2 {
		t.Errorf("%d looks after the stuck one returned, want 2", n)
	}
	want := map[string]string{netID(1): audit.SandboxUnseen, netID(2): audit.SandboxUnseen, netID(3): audit.SandboxLive}
	checkJoinSandboxes(t, path, want)
}

// BenchmarkJoin is Join with its fsynced record, the key naming a path in a
// directory that exists (Docker's netns folder before the namespace is made).
func BenchmarkJoin(b *testing.B) {
	d, _ := newDriver(b)
	key := filepath.Join(b.TempDir(), "netns", "0123456789ab")
	if err := os.Mkdir(filepath.Dir(key), 0o755); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ep := fmt.Sprintf("%064x", i)
		if _, err := d.Join(&network.JoinRequest{NetworkID: netID(1), EndpointID: ep, SandboxKey: key}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSandboxState is the look Join adds, for each kind of key: the
// look alone (look/...), and bounded in time as Join runs it (bounded/...).
func BenchmarkSandboxState(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "netns")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	placeholder := filepath.Join(dir, "0123456789cd")
	if err := os.WriteFile(placeholder, nil, 0o444); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, key string }{
		{"absent", filepath.Join(dir, "0123456789ab")},
		{"unseen", filepath.Join(dir, "none", "netns", "0123456789ab")},
		{"not_netns", placeholder},
	} {
		b.Run("look/"+bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				lookAtKey(bc.key)
			}
		})
		b.Run("bounded/"+bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sandboxState(bc.key)
			}
		})
	}
}

// Joins in flight together each look at their key: one look in progress is
// not a stuck one, and a busy moment must not be recorded as "unseen".
// Each look here answers only once both have started.
func TestJoinSandboxLooksTogether(t *testing.T) {
	var started sync.WaitGroup
	started.Add(2)
	lookSandbox = func(string) string {
		started.Done()
		started.Wait()
		return audit.SandboxLive
	}
	budget := lookBudget
	lookBudget = 10 * time.Second // a hang guard, not a speed check
	t.Cleanup(func() { lookSandbox, lookBudget = lookAtKey, budget })

	d, path := newDriver(t)
	key := filepath.Join(t.TempDir(), "netns", "0123456789ab")
	var joins sync.WaitGroup
	for i := 1; i <= 2; i++ {
		joins.Add(1)
		go func() {
			defer joins.Done()
			if _, err := d.Join(&network.JoinRequest{NetworkID: netID(100), EndpointID: netID(i), SandboxKey: key}); err != nil {
				t.Error(err)
			}
		}()
	}
	joins.Wait()
	got := 0
	for _, r := range records(t, path) {
		if r.Event == audit.EndpointJoin {
			got++
			if r.Sandbox != audit.SandboxLive {
				t.Errorf("join of %s, in flight with another: sandbox %q, want %q", r.EndpointID, r.Sandbox, audit.SandboxLive)
			}
		}
	}
	if got != 2 {
		t.Errorf("%d join records, want 2", got)
	}
}

// A hung mount holds at most 8 looks, each an OS thread (docs/audit.md,
// sandbox): a burst of Joins whose keys hang (dockerKey checks the shape of
// a key, not where it is) starts no more; a later Join answers "unseen" at
// once, without looking; once the looks return, the next Join looks again.
func TestJoinSandboxHungLooksBounded(t *testing.T) {
	const bound = 8 // docs/audit.md, sandbox
	var mu sync.Mutex
	inFlight, peak, started := 0, 0, 0
	release := make(chan struct{})
	lookSandbox = func(string) string {
		mu.Lock()
		started++
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
		return audit.SandboxLive
	}
	budget := lookBudget
	var once sync.Once
	unstick := func() {
		once.Do(func() { close(release) })
		for range cap(looks) { // wait for every look to return its slot
			looks <- struct{}{}
		}
		for range cap(looks) {
			<-looks
		}
		lookSlot <- struct{}{} // and the stuck one its mark
		<-lookSlot
	}
	t.Cleanup(func() {
		unstick()
		lookSandbox, lookBudget = lookAtKey, budget
	})

	d, path := newDriver(t)
	key := "/fuse/netns/0123456789ab" // of Docker's shape: looked at
	join := func(ep string) error {
		_, err := d.Join(&network.JoinRequest{NetworkID: netID(100), EndpointID: ep, SandboxKey: key})
		return err
	}
	// A burst: every look hangs; each Join gives up after its budget.
	lookBudget = time.Second
	const burst = 4 * bound
	var joins sync.WaitGroup
	for i := 1; i <= burst; i++ {
		joins.Add(1)
		go func() {
			defer joins.Done()
			if err := join(netID(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	joins.Wait()
	mu.Lock()
	hung, burstStarted := peak, started
	mu.Unlock()
	if hung > bound {
		t.Errorf("%d looks hung at once on one mount, want at most %d", hung, bound)
	}

	// A later Join, with a budget far beyond the hang guard: it can only
	// answer in time by not waiting for a look at all.
	lookBudget = time.Hour
	done := make(chan error, 1)
	go func() { done <- join(netID(burst + 1)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // a hang guard, not a speed check
		t.Fatal("a Join after the looks hung waits for a look")
	}
	mu.Lock()
	if started != burstStarted {
		t.Errorf("a Join after %d looks hung started a look", burstStarted)
	}
	mu.Unlock()

	unstick()
	lookBudget = 10 * time.Second // a hang guard, not a speed check
	if err := join(netID(burst + 2)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{netID(burst + 2): audit.SandboxLive}
	for i := 1; i <= burst+1; i++ {
		want[netID(i)] = audit.SandboxUnseen
	}
	checkJoinSandboxes(t, path, want)
}

// checkJoinSandboxes checks that the log at path holds one endpoint.join
// per endpoint of want, each with the sandbox state want gives it.
func checkJoinSandboxes(t *testing.T, path string, want map[string]string) {
	t.Helper()
	got := 0
	for _, r := range records(t, path) {
		if r.Event != audit.EndpointJoin {
			continue
		}
		got++
		if r.Sandbox != want[r.EndpointID] {
			t.Errorf("join of %s: sandbox %q, want %q", r.EndpointID, r.Sandbox, want[r.EndpointID])
		}
	}
	if got != len(want) {
		t.Errorf("%d join records, want %d", got, len(want))
	}
}

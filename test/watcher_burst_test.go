//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"sync"
	"testing"
)

// startHostMode starts n `--network host` containers at once, named by
// name(i) when name is not nil, fails the test if one does not start,
// removes them all at cleanup, and returns their IDs in start order.
func startHostMode(t *testing.T, e *engine, n int, name func(i int) string) []string {
	t.Helper()
	ids := make([]string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"run", "-d", "--stop-timeout", "1"}
			if name != nil {
				args = append(args, "--name", name(i))
			}
			out, err := e.dockerTry(append(args, "--network", "host", image, "sleep", "300")...)
			if err != nil {
				errs <- fmt.Errorf("docker %v: %v: %s", args, err, out)
			}
			ids[i] = out
		}()
	}
	wg.Wait()
	t.Cleanup(func() { e.dockerTry(append([]string{"rm", "-f"}, ids...)...) })
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

func containerIDs(recs []record) []string {
	var ids []string
	for _, r := range recs {
		if r.Container != nil {
			ids = append(ids, r.Container.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// TestWatcherBurst: 50 --network host containers started at once, then
// removed at once, give exactly one host.join and one host.leave each, with
// their container IDs; host.* records carry no driver, network or flags.
func TestWatcherBurst(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.start(t)

	const n = 50
	ids := startHostMode(t, e, n, func(i int) string { return fmt.Sprint("burst", i) })
	sort.Strings(ids)

	joins := func(r []record) []record { return filter(r, byEvent("host.join", "ok")) }
	leaves := func(r []record) []record { return filter(r, byEvent("host.leave", "ok")) }
	waitAudit(t, p.audit, fmt.Sprint(n, " host.join"), func(r []record) bool { return len(joins(r)) >= n })
	if out, err := e.dockerTry(append([]string{"rm", "-f"}, ids...)...); err != nil {
		t.Fatalf("docker rm -f: %v\n%s", err, out)
	}
	recs := waitAudit(t, p.audit, fmt.Sprint(n, " host.leave"), func(r []record) bool { return len(leaves(r)) >= n })
	if got := containerIDs(joins(recs)); !equal(got, ids) {
		t.Errorf("host.join container IDs:\n%v\nwant the %d started:\n%v", got, n, ids)
	}
	if got := containerIDs(leaves(recs)); !equal(got, ids) {
		t.Errorf("host.leave container IDs:\n%v\nwant the %d removed:\n%v", got, n, ids)
	}
	if len(recs) != 2*n {
		t.Errorf("%d records, want %d host.join and %d host.leave only:\n%s", len(recs), n, n, dumpRecords(recs))
	}
	for _, r := range recs {
		for _, f := range []string{"driver", "network_id", "internal", "adopted", "tag"} {
			if _, ok := fields(t, r)[f]; ok {
				t.Errorf("%s carries %q, which does not apply to Docker's host network:\n%s", r.Event, f, r.line)
			}
		}
		if r.ObservedLate {
			t.Errorf("%s observed late, want live:\n%s", r.Event, r.line)
		}
	}
	checkSeq(t, recs)
}

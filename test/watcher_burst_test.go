//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"sync"
	"testing"
)

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
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := e.dockerTry("run", "-d", "--stop-timeout", "1", "--name", fmt.Sprint("burst", i), "--network", "host", image, "sleep", "300")
			if err != nil {
				errs <- fmt.Errorf("docker run burst%d: %v: %s", i, err, out)
			}
			ids[i] = out
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sort.Strings(ids)
	t.Cleanup(func() { e.dockerTry(append([]string{"rm", "-f"}, ids...)...) })

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

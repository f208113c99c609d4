//go:build e2e

package e2e

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// perContainer counts the records of event by container ID.
func perContainer(recs []record, event string) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		if r.Event == event && r.Container != nil {
			m[r.Container.ID]++
		}
	}
	return m
}

// kill9 kills the daemon as a crash would: no state saved on the way out.
func (p *legacyPlugin) kill9(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.cmd = nil
}

// sentinel runs a --network host container and waits for its host.join:
// the watcher handles events only once it has reconciled, so by then
// whatever the reconciliation writes is written.
func (p *legacyPlugin) sentinel(t testing.TB, name string) {
	t.Helper()
	id := p.e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", name, "--network", "host", image, "sleep", "300")
	t.Cleanup(func() { p.e.dockerTry("rm", "-f", id) })
	waitAudit(t, p.audit, "host.join of "+name, func(r []record) bool { return len(filter(r, byContainer(name))) == 1 })
}

// kill -9 right after the records of a burst are durable (the state file
// follows up to 200 ms later): after the restart no container has a second
// host.join, nor a second host.leave.
func TestWatcherKill9AfterTheRecords(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.start(t)
	const n = 12
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := e.dockerTry("run", "-d", "--stop-timeout", "1", "--network", "host", image, "sleep", "300")
			if err != nil {
				t.Error(err, out)
			}
			ids[i] = out
		}()
	}
	wg.Wait()
	t.Cleanup(func() { e.dockerTry(append([]string{"rm", "-f"}, ids...)...) })
	for len(perContainer(readAudit(t, p.audit), "host.join")) < n {
		time.Sleep(2 * time.Millisecond)
	}
	p.kill9(t)
	p.start(t)
	p.sentinel(t, "after-joins")
	for id, c := range perContainer(readAudit(t, p.audit), "host.join") {
		if c != 1 {
			t.Errorf("after kill -9 at the joins: container %.12s has %d host.join, want 1:\n%s", id, c, dumpRecords(readAudit(t, p.audit)))
		}
	}

	e.docker(t, append([]string{"rm", "-f"}, ids...)...)
	for len(perContainer(readAudit(t, p.audit), "host.leave")) < n {
		time.Sleep(2 * time.Millisecond)
	}
	p.kill9(t)
	p.start(t)
	p.sentinel(t, "after-leaves")
	recs := readAudit(t, p.audit)
	for id, c := range perContainer(recs, "host.leave") {
		if c != 1 {
			t.Errorf("after kill -9 at the leaves: container %.12s has %d host.leave, want 1", id, c)
		}
	}
	for _, r := range filter(recs, byEvent("host.leave", "ok")) {
		if r.ObservedLate {
			t.Errorf("a host.leave observed late, when every leave was recorded live:\n%s", r.line)
		}
	}
}

// A container that ended and was removed while hostpass was down: its
// host.leave says how long it ran, from Docker's record of its end, not
// from when hostpass came back.
func TestWatcherGoneWhileAway(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.start(t)
	e.docker(t, "run", "-d", "--rm", "--name", "shortlived", "--network", "host", image, "sleep", "2")
	waitAudit(t, p.audit, "host.join", func(r []record) bool { return len(filter(r, byContainer("shortlived"))) == 1 })
	p.stop(t)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := e.dockerTry("inspect", "shortlived"); err != nil {
			break // exited and removed
		}
		if time.Now().After(deadline) {
			t.Fatal("shortlived still there after 30 s")
		}
	}
	time.Sleep(3 * time.Second) // hostpass comes back well after the end
	p.start(t)
	p.sentinel(t, "sentinel")
	leaves := filter(filter(readAudit(t, p.audit), byContainer("shortlived")), byEvent("host.leave", "ok"))
	if len(leaves) != 1 {
		t.Fatalf("want one host.leave of shortlived:\n%s", dumpRecords(leaves))
	}
	if s := leaves[0].HostModeSeconds; s == nil || *s < 1.5 || *s > 3.5 {
		t.Errorf("host.leave of a container that ran 2 s: want host_mode_seconds about 2:\n%s", leaves[0].line)
	}
}

// A container in the namespace of one that connects to a hostpass network
// is on that network too: it is attributed, and the policy stops it.
func TestWatcherSharerOfAConnectingOwner(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.extra = []string{"--policy-allow", "label:team=payments", "--policy-stop"}
	p.start(t)
	e.docker(t, "network", "create", "-d", p.name, "-o", "tag=x", "hpnet")
	x := e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "xown", "--label", "team=payments", image, "sleep", "300")
	y := e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "yshare", "--network", "container:xown", image, "sleep", "300")
	t.Cleanup(func() { e.dockerTry("rm", "-f", y, x) })
	p.sentinel(t, "sentinel") // both starts are handled
	e.docker(t, "network", "connect", "hpnet", "xown")
	recs := waitAudit(t, p.audit, "policy.violation of yshare", func(r []record) bool {
		return len(filter(filter(r, byEvent("policy.violation", "ok")), byContainer("yshare"))) == 1
	})
	a := filter(filter(recs, byEvent("endpoint.attribute", "ok")), byContainer("yshare"))
	if len(a) != 1 {
		t.Fatalf("want one endpoint.attribute of yshare:\n%s", dumpRecords(recs))
	}
	if id, name := via(t, a[0]); id != x || name != "xown" {
		t.Errorf("endpoint.attribute of yshare: via %q (%q), want xown:\n%s", id, name, a[0].line)
	}
	v := filter(filter(recs, byEvent("policy.violation", "ok")), byContainer("yshare"))[0]
	if v.Action != "stopped" {
		t.Errorf("policy.violation of yshare: action %q, want stopped:\n%s", v.Action, v.line)
	}
	if running := e.docker(t, "inspect", "-f", "{{.State.Running}}", "yshare"); running != "false" {
		t.Errorf("yshare running %s, want stopped by the policy", running)
	}
}

// A container in the host's namespace through one removed while hostpass
// was down cannot be placed: it is recorded as such, never left out.
func TestWatcherSharerOfARemovedOwner(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	x := e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "xown", "--network", "host", image, "sleep", "300")
	y := e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "yshare", "--network", "container:xown", image, "sleep", "300")
	t.Cleanup(func() { e.dockerTry("rm", "-f", y, x) })
	e.docker(t, "rm", "-f", "xown")
	p.start(t)
	recs := waitAudit(t, p.audit, "a record of yshare", func(r []record) bool { return len(filter(r, byContainer("yshare"))) > 0 })
	mine := filter(recs, byContainer("yshare"))
	if len(mine) != 1 || mine[0].Event != "container.unplaced" || mine[0].Outcome != "ok" || !mine[0].ObservedLate ||
		!strings.Contains(mine[0].Detail, x) || !strings.Contains(mine[0].Detail, "no longer knows") {
		t.Fatalf("want one container.unplaced of yshare, ok, late, naming xown's ID %s as gone:\n%s", x, dumpRecords(mine))
	}
}

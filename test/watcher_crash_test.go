//go:build e2e

package e2e

import (
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
	ids := startHostMode(t, e, n, nil)
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

package watcher

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/audit/schematest"
)

// attachAll attributes each container's endpoint on hpNet, as the
// connect events do.
func (h *harness) attachAll(ctx context.Context, cs ...Container) {
	h.t.Helper()
	for _, c := range cs {
		h.fake.set(c)
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: c.ID})
	}
}

// stopped is c no longer running, ended at end (zero: Docker does not say).
func stopped(c Container, end time.Time) Container {
	c.Running, c.FinishedAt = false, end
	return c
}

// Endpoints whose container stopped while the watcher was away, and whose
// Leave Docker never sent (a dockerd crash): reconciliation writes one
// endpoint.stale each, dated by inspect's FinishedAt, else by the die
// Docker remembers, else saying the end is unknown; an endpoint the driver
// recorded a leave of gets none; a second reconciliation writes nothing.
func TestReconcileClosesEndpointsWhoseLeaveNeverCame(t *testing.T) {
	h := newHarness(t, "all", false)
	ctx := context.Background()
	task := swarmContainer("task", "web", 1, "", "hp")
	dated, died, left, alive := newContainer("dated", "dated", "busybox", true, "hp"), newContainer("died", "died", "busybox", true, "hp"),
		newContainer("left", "left", "busybox", true, "hp"), newContainer("alive", "alive", "busybox", true, "hp")
	h.attachAll(ctx, task, dated, died, left, alive)

	// Away: dockerd crashed. The task's container was removed (its
	// identity now only in the saved attribution); "dated" is still there,
	// stopped; "died" was removed, its die still in Docker's history; the
	// driver recorded the leave of "left".
	h.fake.mu.Lock()
	delete(h.fake.containers, "task")
	delete(h.fake.containers, "died")
	diedAt := time.Now().UTC().Add(time.Second)
	h.fake.died = map[string]time.Time{"died": diedAt}
	h.fake.mu.Unlock()
	end := t0.Add(2 * time.Minute)
	h.fake.set(stopped(dated, end))
	h.fake.set(stopped(left, t0.Add(time.Minute)))
	if err := h.log.Append(audit.Record{Time: time.Now().UTC(), Event: audit.EndpointLeave, Outcome: audit.OK, Host: "node1", Driver: "hostpass", NetworkID: hpNet, EndpointID: "ep-left"}); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		if err := h.w.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stale := map[string]audit.Record{}
	for _, r := range h.records() {
		if r.Event == audit.EndpointStale {
			if _, twice := stale[r.EndpointID]; twice {
				t.Errorf("a second endpoint.stale of %s", r.EndpointID)
			}
			stale[r.EndpointID] = r
		}
	}
	if len(stale) != 3 {
		t.Fatalf("endpoint.stale of %v, want of ep-task, ep-dated and ep-died; records %s", reflect.ValueOf(stale).MapKeys(), names(h.records()))
	}
	for ep, r := range stale {
		if r.NetworkID != hpNet || r.NetworkName != "hp" || r.Tag != "web-tier" || r.Driver != "hostpass" || !r.ObservedLate || r.Outcome != audit.OK {
			t.Errorf("endpoint.stale of %s: %+v, want network %s (hp, tag web-tier), observed late", ep, r, hpNet)
		}
		if !strings.Contains(r.Detail, "Docker sent no Leave for the endpoint") || !strings.Contains(r.Detail, "the driver was never told to let it go") {
			t.Errorf("endpoint.stale of %s: detail %q", ep, r.Detail)
		}
	}
	if r := stale["ep-task"]; r.Container.ID != "task" || r.Container.Name != task.Name || r.EndedAt != nil || !strings.HasSuffix(r.Detail, "the end of the endpoint's use is unknown") ||
		r.Swarm == nil || r.Swarm.ServiceName != "web" || r.Swarm.Slot != 1 || r.Swarm.TaskID != swarmTask {
		t.Errorf("endpoint.stale of the removed task: %+v (swarm %+v), want its name and swarm identity from the attribution, no end", r, r.Swarm)
	}
	if r := stale["ep-dated"]; r.EndedAt == nil || !r.EndedAt.Equal(end) || r.Container.StartedAt == nil || !r.Container.StartedAt.Equal(t0) || r.Container.Image != "busybox" {
		t.Errorf("endpoint.stale of the stopped container: %+v, want ended at %s (FinishedAt), started at %s", r, end, t0)
	}
	if r := stale["ep-died"]; r.EndedAt == nil || !r.EndedAt.Equal(diedAt) {
		t.Errorf("endpoint.stale of the removed container: ended at %v, want %s (its die)", r.EndedAt, diedAt)
	}
	if got := h.w.state.Attributed; len(got) != 1 || got["ep-alive"].Container != "alive" {
		t.Errorf("attributions left: %+v, want the running container's only", got)
	}
	schematest.Check(t, schematest.Lines(t, h.path))
}

// A crash after the endpoint.stale is durable and before the state that
// forgets the attribution is saved: the restarted watcher reads the record
// back and writes no second one.
func TestCrashAfterEndpointStaleWritesItOnce(t *testing.T) {
	h := newHarness(t, "all", false)
	ctx := context.Background()
	c := newContainer("c1", "web", "busybox", true, "hp")
	h.attachAll(ctx, c)
	if err := h.w.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	h.w.save()
	saved := h.stateBytes()

	h.fake.set(stopped(c, t0.Add(time.Minute)))
	if err := h.w.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(h.records(), audit.EndpointStale); n != 1 {
		t.Fatalf("%d endpoint.stale, want 1; records %s", n, names(h.records()))
	}
	// kill -9: the state file still holds the attribution.
	if err := os.WriteFile(filepath.Join(h.dir, stateFile), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	h.restart()
	if _, ok := h.w.attributed("ep-c1"); !ok {
		t.Fatal("the restored state does not hold the attribution: the test crashes too late")
	}
	if err := h.w.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if recs := h.records(); names(recs) != "endpoint.attribute endpoint.stale(late)" {
		t.Fatalf("after the crash: records %s, want endpoint.attribute endpoint.stale(late)", names(recs))
	}
	if _, ok := h.w.attributed("ep-c1"); ok {
		t.Error("the attribution is still held after the replay of its endpoint.stale")
	}
}

// A container with --restart=always comes back after a dockerd crash with
// the same ID and a new endpoint: the old endpoint gets an endpoint.stale
// dated by the new run's start (the run that held it ended at or before
// it), the new one its attribution, and only the new one stays
// attributed. When the container later stops unseen, its new run's
// FinishedAt ends no record of the old endpoint.
func TestReconcileClosesTheEndpointOfAContainersPreviousRun(t *testing.T) {
	h := newHarness(t, "all", false)
	ctx := context.Background()
	c := newContainer("c1", "web", "busybox", true, "hp")
	h.attachAll(ctx, c)

	again := c
	again.StartedAt = t0.Add(5 * time.Minute)
	again.Endpoints = map[string]string{hpNet: "ep-c1-new"}
	h.fake.set(again)
	for range 2 {
		if err := h.w.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := names(h.records()); got != "endpoint.attribute endpoint.attribute(late) endpoint.stale(late)" {
		t.Fatalf("records %s, want endpoint.attribute endpoint.attribute(late) endpoint.stale(late)", got)
	}
	r := h.records()[2]
	if r.EndpointID != "ep-c1" || r.Container.ID != "c1" || r.EndedAt == nil || !r.EndedAt.Equal(again.StartedAt) || r.Container.StartedAt != nil {
		t.Errorf("endpoint.stale: %+v (ended at %v), want of ep-c1, ended at the new run's start %s, no started_at", r, r.EndedAt, again.StartedAt)
	}
	if !strings.Contains(r.Detail, "its container runs again with a new endpoint") || !strings.Contains(r.Detail, "ended at or before it") {
		t.Errorf("endpoint.stale detail %q", r.Detail)
	}
	if got := h.w.state.Attributed; len(got) != 1 || got["ep-c1-new"].Container != "c1" {
		t.Errorf("attributions left: %+v, want ep-c1-new only", got)
	}

	h.fake.set(stopped(again, again.StartedAt.Add(time.Minute)))
	if err := h.w.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range h.records()[3:] {
		if r.EndpointID != "ep-c1-new" {
			t.Errorf("after the new run stopped: a %s of %s, want records of ep-c1-new only", r.Event, r.EndpointID)
		}
	}
	schematest.Check(t, schematest.Lines(t, h.path))
}

// The same, restarted and stopped again while the watcher was away: the
// old endpoint's endpoint.stale is dated by the later run's start, never
// by that run's FinishedAt.
func TestReconcileDatesTheEndpointOfARunBeforeTheLastByItsStart(t *testing.T) {
	h := newHarness(t, "all", false)
	ctx := context.Background()
	c := newContainer("c1", "web", "busybox", true, "hp")
	h.attachAll(ctx, c)

	again := c
	again.StartedAt = time.Now().UTC().Add(2 * time.Minute)
	again.Endpoints = map[string]string{hpNet: ""} // Docker's inspect of a stopped container
	h.fake.set(stopped(again, again.StartedAt.Add(time.Minute)))
	if err := h.w.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(h.records()); got != "endpoint.attribute endpoint.stale(late)" {
		t.Fatalf("records %s, want endpoint.attribute endpoint.stale(late)", got)
	}
	r := h.records()[1]
	if r.EndpointID != "ep-c1" || r.EndedAt == nil || !r.EndedAt.Equal(again.StartedAt) || r.Container.StartedAt != nil {
		t.Errorf("endpoint.stale: %+v (ended at %v), want of ep-c1, ended at the later run's start %s, no started_at", r, r.EndedAt, again.StartedAt)
	}
	if !strings.HasPrefix(r.Detail, "its container ran again since, and stopped since, with a new endpoint") || !strings.Contains(r.Detail, "ended at or before it") {
		t.Errorf("endpoint.stale detail %q", r.Detail)
	}
	schematest.Check(t, schematest.Lines(t, h.path))
}

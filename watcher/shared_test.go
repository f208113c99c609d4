package watcher

import (
	"context"
	"testing"
	"time"
)

func startEvent(id string, at time.Time) Event {
	return Event{Time: at, Type: "container", Action: "start", ContainerID: id}
}

// A container started with --network container:X, X in host mode, is in the
// host's namespace: host.join and host.leave, via X.
func TestSharingAHostModeContainersNamespace(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		ctx := context.Background()
		h.fake.set(newContainer("x1", "hostly", "busybox", true, "host"))
		y := newContainer("y1", "sidecar", "busybox", true, "container:x1")
		y.StartedAt = t0.Add(time.Second)
		h.fake.set(y)
		h.handle(ctx, startEvent("y1", t0.Add(time.Second)))
		h.handle(ctx, startEvent("y1", t0.Add(time.Second))) // replayed
		h.handle(ctx, Event{Time: t0.Add(11 * time.Second), Type: "container", Action: "die", ContainerID: "y1", Name: "sidecar"})
		recs := h.records()
		if names(recs) != "host.join host.leave" {
			t.Fatalf("records %s, want host.join host.leave of the sidecar", names(recs))
		}
		for _, r := range recs {
			if r.Container.ID != "y1" || r.Container.Name != "sidecar" || r.Via == nil || r.Via.ID != "x1" || r.Via.Name != "hostly" {
				t.Errorf("%s: container %+v via %+v, want y1 (sidecar) via x1 (hostly)", r.Event, r.Container, r.Via)
			}
		}
		if s := *recs[1].HostModeSeconds; s != 10 {
			t.Errorf("host.leave: %v s in host mode, want 10", s)
		}
	})
}

// X on a hostpass network: the container sharing X's namespace is
// attributed to X's endpoint, via X, and the policy applies to it.
func TestSharingAHostpassContainersNamespace(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "label:team=web", true)
		ctx := context.Background()
		h.fake.set(newContainer("x2", "app", "app:1", true, "hp"))
		y := newContainer("y2", "intruder", "busybox", true, "container:x2")
		y.Labels = nil
		h.fake.set(y)
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "x2"})
		h.handle(ctx, startEvent("y2", t0))
		h.handle(ctx, startEvent("y2", t0)) // replayed
		recs := h.records()
		if names(recs) != "endpoint.attribute endpoint.attribute policy.violation" {
			t.Fatalf("records %s, want X's attribution, then the sidecar's and its violation", names(recs))
		}
		for _, r := range recs[1:] {
			if r.Container.ID != "y2" || r.EndpointID != "ep-x2" || r.NetworkID != hpNet || r.Via == nil || r.Via.ID != "x2" || r.Via.Name != "app" {
				t.Errorf("%s: container %s endpoint %s network %s via %+v, want y2 on x2's endpoint ep-x2 via x2 (app)", r.Event, r.Container.ID, r.EndpointID, r.NetworkID, r.Via)
			}
		}
		if recs[2].Action != "stopped" || len(h.fake.stopped) != 1 || h.fake.stopped[0] != "y2" {
			t.Errorf("violation action %q, stopped %v: want y2 stopped", recs[2].Action, h.fake.stopped)
		}
		// X leaves the network: so does the sidecar.
		h.handle(ctx, Event{Time: t0.Add(time.Second), Type: "network", Action: "disconnect", NetworkID: hpNet, ContainerID: "x2"})
		if n := len(h.w.state.Attributed); n != 0 {
			t.Errorf("%d attributions after X left the network, want 0", n)
		}
	})
}

// Reconciling finds containers sharing a namespace of either kind.
func TestReconcileFindsSharedNamespaces(t *testing.T) {
	h := newHarness(t, "all", false)
	ctx := context.Background()
	h.fake.set(newContainer("x1", "hostly", "busybox", true, "host"))
	h.fake.set(newContainer("x2", "app", "app:1", true, "hp"))
	h.fake.set(newContainer("y1", "hostside", "busybox", true, "container:x1"))
	h.fake.set(newContainer("y2", "appside", "busybox", true, "container:x2"))
	h.fake.set(newContainer("z1", "chained", "busybox", true, "container:y1"))
	for range 2 { // twice: nothing more the second time
		if err := h.w.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	for _, r := range h.records() {
		via := ""
		if r.Via != nil {
			via = r.Via.ID
		}
		got[string(r.Event)+" "+r.Container.ID] += via + ";"
	}
	want := map[string]string{
		"host.join x1": ";", "endpoint.attribute x2": ";",
		"host.join y1": "x1;", "endpoint.attribute y2": "x2;", "host.join z1": "y1;",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: via %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("records %v, want %v", got, want)
	}
}

// host.* records name no driver or network; records on an internal, adopted
// hostpass network say so.
func TestRecordsCarryOnlyWhatApplies(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "label:team=payments", false)
		h.internal, h.adopted = true, true
		ctx := context.Background()
		h.fake.set(newContainer("hm", "hm", "busybox", true, "host"))
		h.fake.set(newContainer("hp", "hp", "busybox", true, "hp"))
		h.handle(ctx, hostEvent("connect", "hm", t0))
		h.handle(ctx, hostEvent("disconnect", "hm", t0.Add(time.Second)))
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "hp"})
		recs := h.records()
		if names(recs) != "host.join host.leave endpoint.attribute policy.violation" {
			t.Fatalf("records %s", names(recs))
		}
		for _, r := range recs[:2] {
			if r.Driver != "" || r.NetworkID != "" || r.Internal != nil || r.Adopted != nil || r.Tag != "" {
				t.Errorf("%s carries driver %q network %q internal %v adopted %v tag %q, want none", r.Event, r.Driver, r.NetworkID, r.Internal, r.Adopted, r.Tag)
			}
		}
		for _, r := range recs[2:] {
			if r.Driver != "hostpass" || r.Internal == nil || !*r.Internal || r.Adopted == nil || !*r.Adopted || r.Tag != "web-tier" {
				t.Errorf("%s: driver %q internal %v adopted %v tag %q, want hostpass, internal and adopted true, web-tier", r.Event, r.Driver, r.Internal, r.Adopted, r.Tag)
			}
		}
	})
}

package watcher

import (
	"context"
	"testing"
	"time"
)

// A container's start, after its network connect, calls Docker no more:
// the connect's inspect found everything the records say, and on Docker 29
// a second inspect took the container's lock while `docker run` waited.
func TestStartAfterConnectInspectsNoMore(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		ctx := context.Background()
		h.fake.set(newContainer("c1", "api", "app:2", true, "hp"))
		h.fake.set(newContainer("c2", "web", "nginx:1", true, "host"))
		h.fake.set(newContainer("c3", "db", "pg:16", true, "bridge"))
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, NetworkName: "hp", NetworkType: "hostpass", ContainerID: "c1"})
		h.handle(ctx, hostEvent("connect", "c2", t0))
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: "bridgenet", NetworkName: "bridge", NetworkType: "bridge", ContainerID: "c3"})
		for _, id := range []string{"c1", "c2", "c3"} {
			h.handle(ctx, Event{Time: t0.Add(time.Millisecond), Type: "container", Action: "start", ContainerID: id})
		}
		recs := h.records()
		if names(recs) != "endpoint.attribute host.join" || recs[0].Container.Name != "api" || recs[1].Container.Name != "web" || !recs[1].Container.StartedAt.Equal(t0) {
			t.Fatalf("records %+v: want api's endpoint.attribute and web's host.join, started at %v", recs, t0)
		}
		h.fake.mu.Lock()
		defer h.fake.mu.Unlock()
		if got := h.fake.inspects; got["c1"] != 1 || got["c2"] != 1 || got["c3"] != 0 {
			t.Errorf("inspects %v: want one of c1 and c2 (at connect), none of c3", got)
		}
	})
}

// Without a connect before it (the watcher was away, or the container
// shares another's namespace), a start is inspected as before: here a
// restart placed in its owner's namespace.
func TestStartWithoutConnectIsInspected(t *testing.T) {
	h := newHarness(t, "all", false)
	ctx := context.Background()
	h.fake.set(newContainer("c1", "api", "app:2", true, "hp"))
	h.fake.set(newContainer("s1", "side", "busybox", true, "container:c1"))
	h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, NetworkName: "hp", NetworkType: "hostpass", ContainerID: "c1"})
	h.handle(ctx, Event{Time: t0, Type: "network", Action: "disconnect", NetworkID: hpNet, NetworkName: "hp", NetworkType: "hostpass", ContainerID: "c1"})
	h.handle(ctx, Event{Time: t0.Add(time.Second), Type: "container", Action: "start", ContainerID: "s1"})
	h.handle(ctx, Event{Time: t0.Add(time.Second), Type: "container", Action: "start", ContainerID: "c1"})
	h.fake.mu.Lock()
	got := h.fake.inspects
	h.fake.mu.Unlock()
	if got["s1"] != 1 || got["c1"] < 2 {
		t.Errorf("inspects %v: want s1's start inspected, and c1's start after its disconnect", got)
	}
}

// A hostpass network is inspected once, however many containers join it;
// every record still carries its name and labels.
func TestNetworkInspectedOnce(t *testing.T) {
	h := newHarness(t, "all", false)
	ctx := context.Background()
	for _, id := range []string{"c1", "c2", "c3"} {
		h.fake.set(newContainer(id, "n-"+id, "app:2", true, "hp"))
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, NetworkName: "hp", NetworkType: "hostpass", ContainerID: id})
	}
	recs := h.records()
	if names(recs) != "endpoint.attribute endpoint.attribute endpoint.attribute" {
		t.Fatalf("records: %s, want three endpoint.attribute", names(recs))
	}
	for _, r := range recs {
		if r.NetworkName != "hp" || r.NetworkLabels["env"] != "prod" {
			t.Errorf("endpoint.attribute of %s: network %q labels %v, want hp, env=prod", r.Container.ID, r.NetworkName, r.NetworkLabels)
		}
	}
	h.fake.mu.Lock()
	defer h.fake.mu.Unlock()
	if h.fake.networkInspects != 1 {
		t.Errorf("%d network inspects, want 1", h.fake.networkInspects)
	}
}

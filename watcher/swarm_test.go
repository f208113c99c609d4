package watcher

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/audit/schematest"
)

// IDs as swarm writes them: 25 base-36 characters.
const (
	swarmService = "x7rbl4pkq8pxcv2d3hqm1fxn0"
	swarmTask    = "kf3ee6dpzymq5rr6mfj5ol0cz"
	swarmNode    = "u4s2mxcm7qyv0z8w6b9l1e2a3"
)

// swarmContainer is a task's container as swarm's executor labels it
// (moby daemon/cluster/executor/container/container.go, labels()): slot 0
// names a global service's task after its node.
func swarmContainer(id, service string, slot int, stack, mode string) Container {
	middle := swarmNode
	if slot > 0 {
		middle = string(rune('0' + slot))
	}
	name := service + "." + middle + "." + swarmTask
	c := newContainer(id, name, "busybox", true, mode)
	c.Labels = map[string]string{
		"com.docker.swarm.task": "", "com.docker.swarm.task.id": swarmTask, "com.docker.swarm.task.name": name,
		"com.docker.swarm.service.id": swarmService, "com.docker.swarm.service.name": service, "com.docker.swarm.node.id": swarmNode,
	}
	if stack != "" {
		c.Labels["com.docker.stack.namespace"] = stack
	}
	return c
}

// A global --network host service's task: its host.join and its
// host.leave carry the task's identity, with no slot, also when a watcher
// restarted in between (its session from the saved state, or, not saved,
// read back from the log).
func TestHostModeSwarmTaskCarriesItsIdentity(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		for _, restart := range []string{"none", "saved state", "log replay"} {
			t.Run(restart, func(t *testing.T) { hostModeSwarmTask(t, sh, restart) })
		}
	})
}

func hostModeSwarmTask(t *testing.T, sh shape, restart string) {
	h := sh.harness(t, "all", false)
	ctx := context.Background()
	h.fake.set(swarmContainer("t1", "node-exporter", 0, "", "host"))
	h.handle(ctx, hostEvent("connect", "t1", t0))
	switch restart {
	case "saved state":
		h.w.save()
		h.restart()
	case "log replay":
		h.restart()
		if err := h.w.replayLog(); err != nil {
			t.Fatal(err)
		}
	}
	if _, open := h.w.session("t1"); !open {
		t.Fatal("no open session for t1")
	}
	h.handle(ctx, Event{Time: t0.Add(time.Minute), Type: "container", Action: "die", ContainerID: "t1"})

	recs := h.records()
	if names(recs) != "host.join host.leave" {
		t.Fatalf("records: %s, want host.join host.leave", names(recs))
	}
	want := &audit.SwarmTask{ServiceName: "node-exporter", ServiceID: swarmService, TaskID: swarmTask,
		TaskName: "node-exporter." + swarmNode + "." + swarmTask, NodeID: swarmNode}
	for _, r := range recs {
		if !reflect.DeepEqual(r.Swarm, want) {
			t.Errorf("%s: swarm %+v, want %+v", r.Event, r.Swarm, want)
		}
	}
	schematest.Check(t, schematest.Lines(t, h.path))
}

// A replicated stack service's task on a hostpass network, which the policy
// refuses: its endpoint.attribute and its policy.violation carry the task's
// identity, slot and stack; a plain container's records carry none.
func TestAttributedSwarmTaskCarriesItsIdentity(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "label:team=payments", false)
		ctx := context.Background()
		h.fake.set(swarmContainer("t2", "mon_agent", 2, "mon", "hp"))
		h.fake.set(newContainer("plain", "plain", "busybox", true, "hp"))
		for _, id := range []string{"t2", "plain"} {
			h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: id})
		}

		recs := h.records()
		if names(recs) != "endpoint.attribute policy.violation endpoint.attribute policy.violation" {
			t.Fatalf("records: %s", names(recs))
		}
		want := &audit.SwarmTask{ServiceName: "mon_agent", ServiceID: swarmService, TaskID: swarmTask,
			TaskName: "mon_agent.2." + swarmTask, Slot: 2, NodeID: swarmNode, Stack: "mon"}
		for _, r := range recs[:2] {
			if !reflect.DeepEqual(r.Swarm, want) {
				t.Errorf("%s of the task: swarm %+v, want %+v", r.Event, r.Swarm, want)
			}
		}
		for _, r := range recs[2:] {
			if r.Swarm != nil {
				t.Errorf("%s of a plain container: swarm %+v, want none", r.Event, r.Swarm)
			}
		}
		schematest.Check(t, schematest.Lines(t, h.path))
	})
}

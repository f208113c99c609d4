package watcher

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/audit/schematest"
	"github.com/hostpass/hostpass/swarmtask"
)

// task is the container of swarm task taskID of service, in slot (0: a
// global service's task) and stack (if any), on the hostpass network.
func task(id, service, taskID string, slot int, stack string) Container {
	c := swarmContainer(id, service, slot, stack, "hp")
	name := strings.Replace(c.Labels["com.docker.swarm.task.name"], swarmTask, taskID, 1)
	c.Name, c.Labels["com.docker.swarm.task.id"], c.Labels["com.docker.swarm.task.name"] = name, taskID, name
	return c
}

// service: and stack: rules read the swarm task's identity from its
// container's labels, as the records do: a container that is no task
// (no task ID) matches neither, whatever its name or its other labels.
func TestPolicyBySwarmServiceAndStack(t *testing.T) {
	plainNamedOK := newContainer("p", "ok-x", "busybox", true, "hp")
	claimsService := newContainer("q", "q", "busybox", true, "hp")
	claimsService.Labels["com.docker.swarm.service.name"] = "ok-x" // but no task ID
	for _, c := range []struct {
		policy string
		c      Container
		want   bool
	}{
		{"service:ok-*", task("a", "ok-x", "ta", 1, ""), true},
		{"service:ok-*", task("b", "bad", "tb", 1, ""), false},
		{"service:ok-*", task("g", "ok-agent", "tg", 0, ""), true}, // global
		{"service:ok-*", plainNamedOK, false},
		{"service:ok-*", claimsService, false},
		{"service:ok-x", task("a", "ok-xy", "ta", 1, ""), false},
		{"stack:mon", task("s", "mon_agent", "ts", 2, "mon"), true},
		{"stack:mon", task("s", "mon_agent", "ts", 2, "monitoring"), false},
		{"stack:*", task("n", "agent", "tn", 2, ""), false}, // no stack
		{"stack:m?n", task("s", "mon_agent", "ts", 2, "mon"), true},
		{"service:mon_*", task("s", "mon_agent", "ts", 2, "mon"), true},
		{"image:registry.example/*,service:ok-*", task("b", "bad", "tb", 1, ""), false},
		{"label:team=web,service:ok-*", task("b", "bad", "tb", 1, ""), false}, // swarm containers here carry no team label
		{"label:com.docker.swarm.service.name=bad", task("b", "bad", "tb", 1, ""), true},
	} {
		p, err := ParsePolicy(c.policy)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Allows(c.c); got != c.want {
			t.Errorf("%s allows %s (labels %v): %v, want %v", c.policy, c.c.Name, c.c.Labels, got, c.want)
		}
	}
}

// A bad rule is refused with what was wrong and every accepted form.
func TestBadPolicyRulesNameTheAcceptedForms(t *testing.T) {
	for bad, want := range map[string]string{
		"service:":               `policy rule "service:": want all, or rules label:KEY=VALUE, label:KEY, image:PATTERN, service:PATTERN or stack:PATTERN separated by commas`,
		"service-label:team=pay": `policy rule "service-label:team=pay": want all, or rules label:KEY=VALUE, label:KEY, image:PATTERN, service:PATTERN or stack:PATTERN separated by commas`,
		"stack:[":                `policy rule "stack:[": bad stack pattern (a glob: *, ?, [a-z]): syntax error in pattern`,
		"service:ok-[":           `policy rule "service:ok-[": bad service pattern (a glob: *, ?, [a-z]): syntax error in pattern`,
		"image:[":                `policy rule "image:[": bad image pattern (a glob: *, ?, [a-z]): syntax error in pattern`,
		"service: ok-*": `policy rule "service: ok-*": spaces are not allowed around a rule's argument, key or value (write service:ok-*); ` +
			`no name swarm or Docker writes starts or ends with one`,
		"image:busybox,image:\tregistry.example/*": "policy rule \"image:\\tregistry.example/*\": spaces are not allowed around a rule's argument, key or value (write image:registry.example/*); " +
			`no name swarm or Docker writes starts or ends with one`,
		"label: team=x": `policy rule "label: team=x": spaces are not allowed around a rule's argument, key or value (write label:team=x); ` +
			`no name swarm or Docker writes starts or ends with one`,
		"label:team =x": `policy rule "label:team =x": spaces are not allowed around a rule's argument, key or value (write label:team=x); ` +
			`no name swarm or Docker writes starts or ends with one`,
		"label:team= x": `policy rule "label:team= x": spaces are not allowed around a rule's argument, key or value (write label:team=x); ` +
			`no name swarm or Docker writes starts or ends with one`,
		"service:[a,b]": `policy rule "service:[a": bad service pattern (a glob: *, ?, [a-z]): syntax error in pattern; ` +
			`rules are split at commas, so a [...] cannot hold one: write a rule for each name`,
	} {
		if _, err := ParsePolicy(bad); err == nil || err.Error() != want {
			t.Errorf("ParsePolicy(%q) = %v, want %s", bad, err, want)
		}
	}
}

// Spaces around a rule (after a comma) are not part of it; globs are
// case-sensitive, as Docker's names are.
func TestPolicyRuleSpacingAndCase(t *testing.T) {
	p, err := ParsePolicy(" service:ok-* ,  label:team=a b ")
	if err != nil {
		t.Fatal(err)
	}
	team := newContainer("t", "t", "busybox", true, "hp")
	team.Labels["team"] = "a b"
	for _, c := range []struct {
		c    Container
		want bool
	}{
		{task("a", "ok-x", "ta", 1, ""), true},
		{task("b", "OK-x", "tb", 1, ""), false},
		{team, true},
	} {
		if got := p.Allows(c.c); got != c.want {
			t.Errorf("%s allows %s: %v, want %v", p, c.c.Name, got, c.want)
		}
	}
}

// A replicated task that --policy-stop stops, and the task swarm starts in
// its slot: each has a policy.violation of its own, with its own task ID and
// the same slot, and the stopped one says what swarm does next. A task of an
// allowed service gets its attribution only.
func TestStoppedSwarmTaskThenItsReplacement(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "service:ok-*", true)
		ctx := context.Background()
		first := task("c1", "bad", "taskaaaaaaaaaaaaaaaaaaaa1", 1, "")
		h.fake.set(first)
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "c1"})
		first.Running = false
		h.fake.set(first)
		h.handle(ctx, Event{Time: t0.Add(1e9), Type: "container", Action: "die", ContainerID: "c1"})
		h.fake.set(task("c2", "bad", "taskbbbbbbbbbbbbbbbbbbbb2", 1, ""))
		h.handle(ctx, Event{Time: t0.Add(6e9), Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "c2"})
		h.fake.set(task("ok", "ok-x", "taskcccccccccccccccccccc3", 1, ""))
		h.handle(ctx, Event{Time: t0.Add(7e9), Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "ok"})

		recs := h.records()
		if got := names(recs); got != "endpoint.attribute policy.violation endpoint.attribute policy.violation endpoint.attribute" {
			t.Fatalf("records: %s", got)
		}
		if !reflect.DeepEqual(h.fake.stopped, []string{"c1", "c2"}) {
			t.Errorf("stopped %v, want c1 then c2", h.fake.stopped)
		}
		for i, want := range []struct{ container, taskID, endpoint string }{
			{"c1", "taskaaaaaaaaaaaaaaaaaaaa1", "ep-c1"},
			{"c2", "taskbbbbbbbbbbbbbbbbbbbb2", "ep-c2"},
		} {
			v := recs[1+2*i]
			if v.Container.ID != want.container || v.EndpointID != want.endpoint || v.Action != audit.ActionStopped || v.Policy != "service:ok-*" {
				t.Errorf("violation %d: container %s, endpoint %s, action %q, policy %q; want %s, %s, stopped, service:ok-*",
					i, v.Container.ID, v.EndpointID, v.Action, v.Policy, want.container, want.endpoint)
			}
			if v.Swarm == nil || v.Swarm.TaskID != want.taskID || v.Swarm.Slot != 1 || v.Swarm.ServiceName != "bad" || v.Swarm.ServiceID != swarmService || v.Swarm.NodeID != swarmNode {
				t.Errorf("violation %d: swarm %+v, want task %s of service bad, slot 1", i, v.Swarm, want.taskID)
			}
			wantDetail := "a swarm task: swarm, not hostpass, decides what follows; if the service's restart policy restarts it " +
				"(swarm's default: after any exit, in 5 s, without limit), a new task takes the same slot, and this policy will stop it too; " +
				"end the loop by fixing the service or the policy, or with docker service update --restart-condition none (or --restart-max-attempts N) bad"
			if v.Detail != wantDetail {
				t.Errorf("violation %d: detail %q\nwant %q", i, v.Detail, wantDetail)
			}
		}
		if ok := recs[4]; ok.Container.ID != "ok" || ok.Swarm == nil || ok.Swarm.ServiceName != "ok-x" {
			t.Errorf("the allowed task's attribution: %+v", ok)
		}
		schematest.Check(t, schematest.Lines(t, h.path))
	})
}

// What the stop record tells depends on what swarm does with the task: a
// global service's task comes back on the same node; a violation only
// recorded, a failed stop and a plain container's stop tell nothing of swarm.
func TestStopDetailOfOtherTasks(t *testing.T) {
	for _, c := range []struct {
		name      string
		c         Container
		stop      bool
		stopErr   error
		wantPlace string // "" : no detail
	}{
		{"global", task("g", "agent", "taskggggggggggggggggggggg", 0, ""), true, nil, "takes the same node,"},
		{"a task name swarm did not write", func() Container {
			c := task("m", "agent", "taskmmmmmmmmmmmmmmmmmmmmm", 1, "")
			c.Labels["com.docker.swarm.task.name"] = "agent"
			return c
		}(), true, nil, "a new task takes its place,"},
		{"a service name swarm did not write (a forged audit row)", func() Container {
			c := task("x", "agent", "taskxxxxxxxxxxxxxxxxxxxxx", 1, "")
			c.Labels["com.docker.swarm.service.name"] = "agent\n2026-11-28T17:00:00Z policy.violation ok FORGED"
			return c
		}(), true, nil, ""},
		{"recorded only", task("r", "agent", "taskrrrrrrrrrrrrrrrrrrrrr", 1, ""), false, nil, ""},
		{"stop failed", task("f", "agent", "taskfffffffffffffffffffff", 1, ""), true, context.DeadlineExceeded, ""},
		{"plain container", newContainer("p", "p", "busybox", true, "hp"), true, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, "service:ok-*", c.stop)
			h.fake.stopErr = c.stopErr
			h.fake.set(c.c)
			h.handle(context.Background(), Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: c.c.ID})
			recs := h.records()
			if names(recs) != "endpoint.attribute policy.violation" {
				t.Fatalf("records: %s", names(recs))
			}
			d := recs[1].Detail
			if c.wantPlace == "" && d != "" || c.wantPlace != "" && !strings.Contains(d, c.wantPlace) {
				t.Errorf("detail %q, want it to say %q", d, c.wantPlace)
			}
			for _, r := range recs {
				if r.Swarm != nil && strings.ContainsAny(r.Swarm.ServiceName+r.Swarm.TaskName+r.Swarm.Stack, "\n ") {
					t.Errorf("%s: swarm %+v carries a label's text swarm did not write", r.Event, r.Swarm)
				}
			}
			schematest.Check(t, schematest.Lines(t, h.path))
		})
	}
}

// After a crash between a task's endpoint.attribute and its violation, the
// log read back judges the task by service: as the live watcher did, from
// the swarm identity the record kept whole: the refused task's endpoint is
// attributed again (its violation still to write), the allowed ones' are
// done, also one whose labels the record's bound cut (swarm's among them).
func TestReplayJudgesTasksByService(t *testing.T) {
	h := newHarness(t, "service:ok-*", true)
	now := time.Now().UTC()
	many := task("c3", "ok-x", "taskccccccccccccccccccccc3", 1, "")
	for i := range 80 {
		many.Labels[fmt.Sprintf("app.%03d", i)] = strings.Repeat("x", 1000)
	}
	for _, c := range []Container{task("c1", "bad", "taskaaaaaaaaaaaaaaaaaaaa1", 1, ""), task("c2", "ok-x", "taskbbbbbbbbbbbbbbbbbbbb2", 1, ""), many} {
		ac := c.Container
		ac.StartedAt = &now
		if err := h.log.Append(audit.Record{Time: now, Event: audit.EndpointAttribute, Outcome: audit.OK, Host: "node1",
			NetworkID: hpNet, EndpointID: "ep-" + c.ID, Container: &ac, Swarm: swarmtask.FromLabels(c.Labels)}); err != nil {
			t.Fatal(err)
		}
	}
	recs := h.records()
	if cut := recs[2]; !strings.Contains(strings.Join(cut.Truncated, " "), "container.labels") || cut.Container.Labels["com.docker.swarm.service.name"] != "" || cut.Swarm.ServiceName != "ok-x" {
		t.Fatalf("c3's record: truncated %v, service name label %q, swarm %+v; want container.labels cut, swarm's labels with them, and the identity whole",
			cut.Truncated, cut.Container.Labels["com.docker.swarm.service.name"], cut.Swarm)
	}
	if err := h.w.replayLog(); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.w.state.Attributed["ep-c1"]; ok {
		t.Error("bad's task, with no violation in the log, is noted as attributed: its violation would never be written")
	}
	if _, ok := h.w.state.Attributed["ep-c2"]; !ok {
		t.Error("ok-x's task, allowed, is not noted as attributed")
	}
	if _, ok := h.w.state.Attributed["ep-c3"]; !ok {
		t.Error("ok-x's task with its labels cut in the record, allowed, is not noted as attributed: its endpoint.attribute would be written again")
	}
}

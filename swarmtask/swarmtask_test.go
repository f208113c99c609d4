package swarmtask

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hostpass/hostpass/audit"
)

// Label sets as swarm writes them (IDs are 25 base-36 characters).
const (
	svcID  = "x7rbl4pkq8pxcv2d3hqm1fxn0"
	taskID = "kf3ee6dpzymq5rr6mfj5ol0cz"
	nodeID = "u4s2mxcm7qyv0z8w6b9l1e2a3"
)

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func task(name, taskName string) map[string]string {
	return labels("com.docker.swarm.task", "", LabelTaskID, taskID, LabelTaskName, taskName,
		LabelServiceID, svcID, LabelServiceName, name, LabelNodeID, nodeID)
}

func TestFromLabels(t *testing.T) {
	stack := task("mon_agent", "mon_agent.3."+taskID)
	stack[LabelStack] = "mon"
	huge := task("web", "web.1."+taskID)
	huge[LabelServiceName] = strings.Repeat("w", MaxLabel+1)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   *audit.SwarmTask
	}{
		{"replicated", task("web", "web.2."+taskID),
			&audit.SwarmTask{ServiceName: "web", ServiceID: svcID, TaskID: taskID, TaskName: "web.2." + taskID, Slot: 2, NodeID: nodeID}},
		{"global: the middle is the node ID", task("node-exporter", "node-exporter."+nodeID+"."+taskID),
			&audit.SwarmTask{ServiceName: "node-exporter", ServiceID: svcID, TaskID: taskID, TaskName: "node-exporter." + nodeID + "." + taskID, NodeID: nodeID}},
		{"stack", stack,
			&audit.SwarmTask{ServiceName: "mon_agent", ServiceID: svcID, TaskID: taskID, TaskName: "mon_agent.3." + taskID, Slot: 3, NodeID: nodeID, Stack: "mon"}},
		{"a service name swarm refuses (dots): dropped, the rest kept", task("a.1.b", "a.1.b.7."+taskID),
			&audit.SwarmTask{ServiceID: svcID, TaskID: taskID, TaskName: "a.1.b.7." + taskID, NodeID: nodeID}},
		{"the longest service name swarm accepts", task(strings.Repeat("s", 63), strings.Repeat("s", 63)+".4."+taskID),
			&audit.SwarmTask{ServiceName: strings.Repeat("s", 63), ServiceID: svcID, TaskID: taskID, TaskName: strings.Repeat("s", 63) + ".4." + taskID, Slot: 4, NodeID: nodeID}},
		{"not a swarm task", labels("maintainer", "me"), nil},
		{"no labels", nil, nil},
		{"an empty task ID", labels(LabelTaskID, "", LabelServiceName, "web"), nil},
		{"a service name over the bound: only it is dropped", huge,
			&audit.SwarmTask{ServiceID: svcID, TaskID: taskID, TaskName: "web.1." + taskID, NodeID: nodeID}},
		{"a task ID swarm does not write", labels(LabelTaskID, "T1", LabelServiceName, "web"), nil},
		{"only a task ID (a plain container's claim)", labels(LabelTaskID, "t1"), &audit.SwarmTask{TaskID: "t1"}},
	} {
		if got := FromLabels(c.labels); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// A task name not of the form <service>.<slot>.<task id> gives no slot, and
// is kept as it is.
func TestMalformedTaskNamesHaveNoSlot(t *testing.T) {
	for _, name := range []string{
		"",
		"web",
		"web.2",                              // no task ID
		"web.2." + taskID + "x",              // another task ID
		"api.2." + taskID,                    // another service
		"web.." + taskID,                     // empty middle
		"web.0." + taskID,                    // slot 0 is a global task's
		"web.-1." + taskID,                   // negative
		"web.02." + taskID,                   // leading zero
		"web.2.5." + taskID,                  // two parts
		"web.99999999999999999999." + taskID, // overflows int
	} {
		got := FromLabels(task("web", name))
		if got == nil || got.Slot != 0 || got.TaskName != name {
			t.Errorf("task name %q: got %+v, want slot 0 and the name kept", name, got)
		}
	}
	// Characters swarm does not write: no slot, and the name is dropped.
	for _, name := range []string{"web.+2." + taskID, "web.２." + taskID} {
		got := FromLabels(task("web", name))
		if got == nil || got.Slot != 0 || got.TaskName != "" {
			t.Errorf("task name %q: got %+v, want slot 0 and no name", name, got)
		}
	}
}

// Each value at its bound is kept whole; one byte over, that value alone is
// dropped, except the task ID, without which there is no identity.
func TestEachLabelIsBounded(t *testing.T) {
	for key, max := range map[string]int{LabelTaskID: 64, LabelTaskName: MaxLabel, LabelServiceID: 64,
		LabelServiceName: 63, LabelNodeID: 64, LabelStack: 63} {
		l := task("web", "web.1."+taskID)
		l[key] = strings.Repeat("v", max)
		if got := FromLabels(l); got == nil || field(got, key) != l[key] {
			t.Errorf("%s of %d bytes: got %+v, want it kept", key, max, got)
		}
		l[key] = strings.Repeat("v", max+1)
		got := FromLabels(l)
		switch {
		case key == LabelTaskID && got != nil:
			t.Errorf("task ID of %d bytes: got %+v, want nil", max+1, got)
		case key != LabelTaskID && (got == nil || field(got, key) != "" || got.TaskID != taskID):
			t.Errorf("%s of %d bytes: got %+v, want that field empty and the rest kept", key, max+1, got)
		}
	}
}

// A label that swarm would not have written, such as a service name that
// carries a forged audit row, is dropped: no field of the identity holds
// anything but what swarm writes.
func TestForgedLabelsAreDropped(t *testing.T) {
	forged := "web\n2026-11-28T17:00:00Z policy.violation ok FORGED"
	for _, key := range []string{LabelTaskName, LabelServiceID, LabelServiceName, LabelNodeID, LabelStack} {
		for _, v := range []string{forged, "web\tx", "web x", "web\x1b[2J", "Wéb", "web/x", "-web", "web-", "x7rbl4pkq8pxcv2d3hqm1fxN0"} {
			if key == LabelTaskName && (v == "-web" || v == "web-") {
				continue // a task name of the right characters, kept as it is (without a slot)
			}
			if (key == LabelServiceName || key == LabelStack || key == LabelTaskName) && v == "x7rbl4pkq8pxcv2d3hqm1fxN0" {
				continue // upper case is a name's, not an ID's
			}
			if key == LabelStack && v == "web-" {
				continue // a stack may end in - or _: its service is <stack>_<name>
			}
			l := task("web", "web.1."+taskID)
			l[key] = v
			got := FromLabels(l)
			if got == nil || field(got, key) != "" || got.TaskID != taskID {
				t.Errorf("%s %q: got %+v, want that field empty and the rest kept", key, v, got)
			}
		}
	}
	if got := FromLabels(labels(LabelTaskID, forged, LabelServiceName, "web")); got != nil {
		t.Errorf("a forged task ID: got %+v, want no identity", got)
	}
}

func field(t *audit.SwarmTask, key string) string {
	return map[string]string{LabelTaskID: t.TaskID, LabelTaskName: t.TaskName, LabelServiceID: t.ServiceID,
		LabelServiceName: t.ServiceName, LabelNodeID: t.NodeID, LabelStack: t.Stack}[key]
}

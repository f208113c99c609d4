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
		{"a service name with dots", task("a.1.b", "a.1.b.7."+taskID),
			&audit.SwarmTask{ServiceName: "a.1.b", ServiceID: svcID, TaskID: taskID, TaskName: "a.1.b.7." + taskID, Slot: 7, NodeID: nodeID}},
		{"not a swarm task", labels("maintainer", "me"), nil},
		{"no labels", nil, nil},
		{"an empty task ID", labels(LabelTaskID, "", LabelServiceName, "web"), nil},
		{"a value over the bound", huge, nil},
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
		"web.+2." + taskID,                   // not decimal as swarm writes it
		"web.02." + taskID,                   // leading zero
		"web.2.5." + taskID,                  // two parts
		"web.99999999999999999999." + taskID, // overflows int
		"web.２." + taskID,                    // a full-width digit
	} {
		got := FromLabels(task("web", name))
		if got == nil || got.Slot != 0 || got.TaskName != name {
			t.Errorf("task name %q: got %+v, want slot 0 and the name kept", name, got)
		}
	}
}

// Every value at the bound is kept whole; one byte over, none is.
func TestEachLabelIsBounded(t *testing.T) {
	for _, key := range []string{LabelTaskID, LabelTaskName, LabelServiceID, LabelServiceName, LabelNodeID, LabelStack} {
		l := task("web", "web.1."+taskID)
		l[key] = strings.Repeat("v", MaxLabel)
		if FromLabels(l) == nil {
			t.Errorf("%s of %d bytes: no identity, want it kept", key, MaxLabel)
		}
		l[key] = strings.Repeat("v", MaxLabel+1)
		if got := FromLabels(l); got != nil {
			t.Errorf("%s of %d bytes: got %+v, want nil", key, MaxLabel+1, got)
		}
	}
}

// Package swarmtask reads a Docker Swarm task's identity from its
// container's labels.
//
// Swarm's executor sets com.docker.swarm.* labels on every task container
// (moby daemon/cluster/executor/container/container.go, labels()), over
// any the service gives. But the labels are all there is: a plain
// `docker run --label com.docker.swarm.task.id=...` sets the same ones. So
// a SwarmTask proves only what the labels say; a manager's `docker service
// ps` is the authority.
package swarmtask

import (
	"strconv"
	"strings"

	"github.com/hostpass/hostpass/audit"
)

// The labels swarm sets on a task's container, and the one docker stack
// deploy adds (docker/cli cli/compose/convert/service.go).
const (
	LabelTaskID      = "com.docker.swarm.task.id"
	LabelTaskName    = "com.docker.swarm.task.name"
	LabelServiceID   = "com.docker.swarm.service.id"
	LabelServiceName = "com.docker.swarm.service.name"
	LabelNodeID      = "com.docker.swarm.node.id"
	LabelStack       = "com.docker.stack.namespace"
)

// MaxLabel bounds each label read. Swarm's IDs are 25 characters and a
// service name at most 63, so a task name is under 120 bytes; a longer
// value is not one swarm wrote.
const MaxLabel = 256

// FromLabels returns the swarm identity the labels state, or nil when they
// state none: no task ID, or a value over MaxLabel (then the container is
// recorded without it, its labels still in container.labels, cut to the
// record's bound like any).
func FromLabels(labels map[string]string) *audit.SwarmTask {
	taskID, ok := labels[LabelTaskID]
	if !ok || taskID == "" {
		return nil
	}
	t := &audit.SwarmTask{
		ServiceName: labels[LabelServiceName],
		ServiceID:   labels[LabelServiceID],
		TaskID:      taskID,
		TaskName:    labels[LabelTaskName],
		NodeID:      labels[LabelNodeID],
		Stack:       labels[LabelStack],
	}
	for _, v := range []string{t.ServiceName, t.ServiceID, t.TaskID, t.TaskName, t.NodeID, t.Stack} {
		if len(v) > MaxLabel {
			return nil
		}
	}
	t.Slot = slot(t.TaskName, t.ServiceName, t.TaskID)
	return t
}

// slot reads the slot from a task name, "<service>.<slot>.<task id>"
// (swarmkit api/naming Task). A global service's tasks have slot 0 and are
// named "<service>.<node id>.<task id>": no slot. So is a name that is not
// of this form; the name itself is still recorded.
func slot(name, service, taskID string) int {
	mid, ok := strings.CutPrefix(name, service+".")
	if !ok || service == "" {
		return 0
	}
	if mid, ok = strings.CutSuffix(mid, "."+taskID); !ok {
		return 0
	}
	n, err := strconv.Atoi(mid)
	if err != nil || n < 1 || mid != strconv.Itoa(n) {
		return 0
	}
	return n
}

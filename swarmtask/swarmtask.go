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
	"regexp"
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

// What swarm writes in each label, so that a label that swarm did not write
// (a plain `docker run --label com.docker.swarm.service.name=...`) cannot
// carry newlines or other text into an auditor's tables:
//   - a service name: swarmkit manager/controlapi/common.go,
//     validateAnnotations: isValidDNSName `^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`
//     and "name must be 63 characters or fewer";
//   - a stack: docker stack deploy names each service <stack>_<name>
//     (docker/cli cli/compose/convert), which must pass the same check, so a
//     stack is of the same characters and no longer;
//   - task, service and node IDs: swarmkit identity.NewID, 25 lowercase
//     base-36 characters ((*big.Int).Text(36)); up to 64 accepted;
//   - a task name: swarmkit api/naming Task, <service>.<slot or node
//     ID>.<task ID>: the service name's characters and dots.
var (
	serviceName = regexp.MustCompile(`^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`)
	stackName   = regexp.MustCompile(`^[a-zA-Z0-9][-_a-zA-Z0-9]*$`)
	swarmID     = regexp.MustCompile(`^[a-z0-9]{1,64}$`)
	taskName    = regexp.MustCompile(`^[-_.a-zA-Z0-9]+$`)
)

// maxName: a DNS label, swarm's bound on a service name.
const maxName = 63

// FromLabels returns the swarm identity the labels state, or nil when they
// state none: no task ID, or one that is not an ID as swarm writes it. Any
// other value swarm would not have written (see serviceName) is left out,
// the rest kept; the container's labels are still in container.labels,
// cut to the record's bound like any.
func FromLabels(labels map[string]string) *audit.SwarmTask {
	taskID := labels[LabelTaskID]
	if !swarmID.MatchString(taskID) {
		return nil
	}
	t := &audit.SwarmTask{
		ServiceName: accept(labels[LabelServiceName], serviceName, maxName),
		ServiceID:   accept(labels[LabelServiceID], swarmID, MaxLabel),
		TaskID:      taskID,
		TaskName:    accept(labels[LabelTaskName], taskName, MaxLabel),
		NodeID:      accept(labels[LabelNodeID], swarmID, MaxLabel),
		Stack:       accept(labels[LabelStack], stackName, maxName),
	}
	t.Slot = slot(t.TaskName, t.ServiceName, t.TaskID)
	return t
}

// accept returns v if it is of the form and at most max bytes, else "".
func accept(v string, form *regexp.Regexp, max int) string {
	if len(v) > max || !form.MatchString(v) {
		return ""
	}
	return v
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

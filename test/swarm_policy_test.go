//go:build e2e

package e2e

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"
)

// swarmLoop bounds the waits on swarm's restarts: each round is the
// watcher's stop (5 s, busybox's sleep ignores SIGTERM) plus swarm's
// restart delay (5 s by default) plus the task's start.
const swarmLoop = 90 * time.Second

// violationsOf returns the policy.violation records of service's tasks in
// both nodes' trails, by time. Each node records the tasks it ran.
func (sw *swarm) violationsOf(t testing.TB, service string) []record {
	t.Helper()
	var out []record
	for _, n := range sw.nodes() {
		out = append(out, filter(readAudit(t, n.auditLog), func(r record) bool {
			return r.Event == "policy.violation" && r.Swarm != nil && r.Swarm.ServiceName == service
		})...)
	}
	sort.SliceStable(out, func(i, j int) bool { return mustTime(t, out[i].Time).Before(mustTime(t, out[j].Time)) })
	return out
}

// waitViolations polls both trails until service's tasks have n violations.
func (sw *swarm) waitViolations(t testing.TB, service string, n int) []record {
	t.Helper()
	deadline := time.Now().Add(swarmLoop)
	for {
		v := sw.violationsOf(t, service)
		if len(v) >= n {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d policy.violation of service %s within %s, want %d:\n%s\n%s", len(v), service, swarmLoop, n,
				dumpRecords(v), sw.manager.docker(t, "service", "ps", service))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitEnded waits until service has no task left to run and its tasks at
// least n violations, and returns those.
func (sw *swarm) waitEnded(t testing.TB, service string, n int) []record {
	t.Helper()
	deadline := time.Now().Add(swarmLoop)
	for {
		running := sw.manager.docker(t, "service", "ps", "-q", "--filter", "desired-state=running", service)
		if v := sw.violationsOf(t, service); running == "" && len(v) >= n {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s still has a task to run, or fewer than %d violations, after %s:\n%s", service, n, swarmLoop,
				sw.manager.docker(t, "service", "ps", service))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// ranOn is the node whose trail holds r: the node the task ran on, as its
// host name and swarm's node ID say.
func (sw *swarm) ranOn(t testing.TB, r record) *swarmNode {
	t.Helper()
	for _, n := range sw.nodes() {
		if r.Host == n.hostname && r.Swarm != nil && r.Swarm.NodeID == n.nodeID {
			return n
		}
	}
	t.Fatalf("record of host %q, node %+v: no such node in the swarm:\n%s", r.Host, r.Swarm, r.line)
	return nil
}

// serviceTask is one line of docker service ps. Error is as the CLI shows
// it, in quotes.
type serviceTask struct {
	ID, Name, Node, Desired, Current, Error string
}

func servicePS(t testing.TB, e *engine, service string) []serviceTask {
	t.Helper()
	out := e.docker(t, "service", "ps", "--no-trunc", "--format", "{{.ID}}|{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}", service)
	var tasks []serviceTask
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, "|", 6)
		if len(f) == 6 {
			// The name of a task shown under its slot's current one starts
			// with \_ .
			tasks = append(tasks, serviceTask{f[0], strings.TrimPrefix(f[1], `\_ `), f[2], f[3], f[4], f[5]})
		}
	}
	return tasks
}

// TestSwarmPolicy, on the two-node swarm, both nodes with --policy-allow
// service:ok-* and --policy-stop: a task of service bad on a swarm-scoped
// hostpass network is stopped by the node it ran on; swarm marks it failed
// and starts a new task in its slot, on either node, which is stopped too.
// The trails hold a violation per task, each with its own task ID and the
// same slot, and docker service ps the failed task under the new one. The
// loop ends with --restart-condition none, or after --restart-max-attempts.
// A process that exits 0 at the stop completes and is restarted all the
// same; a global service's task comes back on its node. Once a loop has
// ended, no task follows. A task of ok-x runs. And a service's --label is
// not on its task's container, its --container-label is.
func TestSwarmPolicy(t *testing.T) {
	sw := newSwarm(t, swarmConfig{Settings: []string{"HOSTPASS_POLICY_ALLOW=service:ok-*", "HOSTPASS_POLICY_STOP=true"}})
	m := sw.manager
	m.docker(t, "network", "create", "-d", sw.plugin, "--scope", "swarm", "sp-net")
	// Runs before the plugins and the engines go (cleanups run last first).
	t.Cleanup(func() { m.dockerTry("service", "rm", "bad", "ok-x", "capped", "clean", "agent", "ok-labels") })

	// A short grace: the engines' stop at the end need not wait 10 s on it.
	m.docker(t, "service", "create", "--detach", "--name", "ok-x", "--stop-grace-period", "1s", "--network", "sp-net", image, "sleep", "300")
	created := time.Now()
	m.docker(t, "service", "create", "--detach", "--name", "bad", "--network", "sp-net", image, "sleep", "300")
	// One restart allowed; a process that exits 0 on SIGTERM; a global
	// service.
	m.docker(t, "service", "create", "--detach", "--name", "capped", "--restart-max-attempts", "1", "--network", "sp-net", image, "sleep", "300")
	m.docker(t, "service", "create", "--detach", "--name", "clean", "--network", "sp-net", image, "sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait")
	m.docker(t, "service", "create", "--detach", "--name", "agent", "--mode", "global", "--network", "sp-net", image, "sleep", "300")
	// A service's own labels and its container labels (on no hostpass
	// network: it only shows what a task's container carries).
	m.docker(t, "service", "create", "--detach", "--name", "ok-labels", "--stop-grace-period", "1s", "--label", "team=x",
		"--container-label", "c=y", image, "sleep", "300")

	v := sw.waitViolations(t, "bad", 2)
	t.Logf("service create to the second violation: %s", time.Since(created).Round(time.Second))
	first, second := v[0].Swarm, v[1].Swarm
	if first.TaskID == second.TaskID || first.Slot != 1 || second.Slot != 1 {
		t.Errorf("violations of tasks %s (slot %d) and %s (slot %d): want two tasks in slot 1", first.TaskID, first.Slot, second.TaskID, second.Slot)
	}
	for _, r := range v[:2] {
		n := sw.ranOn(t, r)
		if r.Action != "stopped" || r.Policy != "service:ok-*" || r.Container == nil || r.Container.Name != "bad.1."+r.Swarm.TaskID ||
			!strings.Contains(r.Detail, "if the service's restart policy restarts it") || !strings.Contains(r.Detail, "a new task takes the same slot") || !strings.Contains(r.Detail, "docker service update --restart-condition none") {
			t.Errorf("%s: violation: want action stopped, policy service:ok-*, container bad.1.TASK, and what swarm does next in detail; got:\n%s", n.hostname, r.line)
		}
	}
	t.Logf("bad's tasks ran on %s, then %s", sw.ranOn(t, v[0]).hostname, sw.ranOn(t, v[1]).hostname)
	t1, t2 := mustTime(t, v[0].Time), mustTime(t, v[1].Time)
	t.Logf("the first task ran %s from its start to its violation record, the stop included", t1.Sub(mustTime(t, v[0].Container.StartedAt)).Round(100*time.Millisecond))
	t.Logf("stop, restart delay and new task: %s from the first violation to the second", t2.Sub(t1).Round(100*time.Millisecond))
	if code := sw.ranOn(t, v[0]).docker(t, "inspect", "-f", "{{.State.ExitCode}}", v[0].Container.ID); code != "137" {
		t.Errorf("the stopped task's container exited %s, want 137 (busybox's sleep ignores SIGTERM: killed after the 5 s stop timeout)", code)
	}

	// What the user sees: the failed task under its slot's new one.
	tasks := servicePS(t, m.engine, "bad")
	t.Logf("docker service ps bad:\n%s", m.docker(t, "service", "ps", "bad"))
	byID := map[string]serviceTask{}
	for _, s := range tasks {
		byID[s.ID] = s
	}
	if s, ok := byID[first.TaskID]; !ok || s.Name != "bad.1" || s.Node != sw.ranOn(t, v[0]).hostname || s.Desired != "Shutdown" ||
		!strings.HasPrefix(s.Current, "Failed") || s.Error != `"task: non-zero exit (137)"` {
		t.Errorf(`docker service ps: task %s: %+v; want bad.1 on %s, Shutdown, Failed, "task: non-zero exit (137)"; all: %+v`, first.TaskID, s, sw.ranOn(t, v[0]).hostname, tasks)
	}
	if s, ok := byID[second.TaskID]; !ok || s.Name != "bad.1" {
		t.Errorf("docker service ps: task %s: %+v; want bad.1; all: %+v", second.TaskID, s, tasks)
	}

	// Ending the loop: the update's own task is stopped too, and nothing
	// replaces it.
	before := len(sw.violationsOf(t, "bad"))
	m.docker(t, "service", "update", "--detach", "--restart-condition", "none", "bad")
	badEnded := len(sw.waitEnded(t, "bad", before+1))
	t.Logf("after --restart-condition none: docker service ps bad:\n%s\nupdate status: %s", m.docker(t, "service", "ps", "bad"),
		m.docker(t, "service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}: {{.UpdateStatus.Message}}{{end}}", "bad"))

	// The auditor's view of the loop, node by node: one violation per
	// task, all in slot 1, every task swarm ran once.
	var ids []string
	for _, n := range sw.nodes() {
		shown := strings.TrimSpace(run(t, hostpassBin(t), "audit", "show", "--json", "--service", "bad", "--event", "policy.violation", n.auditLog))
		for _, line := range strings.Split(shown, "\n") {
			if line == "" {
				continue
			}
			var r record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("audit show --json: %v: %s", err, line)
			}
			if r.Swarm == nil || r.Swarm.Slot != 1 || r.Host != n.hostname {
				t.Errorf("%s: audit show --service bad --event policy.violation: %s, want a task of slot 1 on this host", n.hostname, line)
				continue
			}
			ids = append(ids, r.Swarm.TaskID)
		}
		t.Logf("%s: audit show --service bad --event policy.violation:\n%s", n.hostname,
			run(t, hostpassBin(t), "audit", "show", "--service", "bad", "--event", "policy.violation", n.auditLog))
	}
	unique := map[string]bool{}
	for _, id := range ids {
		unique[id] = true
	}
	if len(ids) < 3 || len(ids) != badEnded || len(unique) != len(ids) || !unique[first.TaskID] || !unique[second.TaskID] {
		t.Errorf("audit show --service bad --event policy.violation on both nodes: tasks %v, want %d (the trails' violations): %s, %s, ..., the update's, each once",
			ids, badEnded, first.TaskID, second.TaskID)
	}

	// --restart-max-attempts 1: the first task and one restart, then none.
	capped := sw.waitEnded(t, "capped", 2)
	t.Logf("docker service ps capped:\n%s", m.docker(t, "service", "ps", "capped"))
	if len(capped) != 2 {
		t.Errorf("capped (--restart-max-attempts 1): %d violations, want 2:\n%s", len(capped), dumpRecords(capped))
	}

	// Once a loop has ended, no task follows: none in a generous wait,
	// several times a round (restart delay 5 s, stop 5 s, start).
	time.Sleep(30 * time.Second)
	for service, ended := range map[string]int{"bad": badEnded, "capped": len(capped)} {
		if v := sw.violationsOf(t, service); len(v) != ended {
			t.Errorf("%s: %d violations 30 s after its loop ended, want still %d:\n%s\n%s", service, len(v), ended, dumpRecords(v),
				m.docker(t, "service", "ps", service))
		}
	}

	// A task whose process exits 0 at the stop's SIGTERM completes, and
	// the default restart condition (any) restarts it all the same. The
	// loop is faster: no 5 s wait for SIGKILL. Checked on the task before
	// the newest (swarm keeps 5 per slot and removes the older ones'
	// containers).
	clean := sw.waitViolations(t, "clean", 2)
	stopped := clean[len(clean)-2]
	t.Logf("clean: %d violations, %s from the first to the last", len(clean), mustTime(t, clean[len(clean)-1].Time).Sub(mustTime(t, clean[0].Time)).Round(100*time.Millisecond))
	if code := sw.ranOn(t, stopped).docker(t, "inspect", "-f", "{{.State.ExitCode}}", stopped.Container.ID); code != "0" {
		t.Errorf("clean's stopped container exited %s, want 0 (it exits at SIGTERM)", code)
	}
	found := false
	for _, s := range servicePS(t, m.engine, "clean") {
		if s.ID == stopped.Swarm.TaskID {
			found = true
			if !strings.HasPrefix(s.Current, "Complete") || s.Error != "" {
				t.Errorf("docker service ps clean: task %s: %+v; want Complete, no error", s.ID, s)
			}
		}
	}
	if !found {
		t.Errorf("docker service ps clean: no task %s, the stopped one:\n%s", stopped.Swarm.TaskID, m.docker(t, "service", "ps", "--no-trunc", "clean"))
	}
	t.Logf("docker service ps clean:\n%s", m.docker(t, "service", "ps", "clean"))

	// A global service: a task per node, each stopped by its node and
	// replaced on the same node, with no slot.
	for _, n := range sw.nodes() {
		var mine []record
		waitFor(t, "two violations of agent's tasks on "+n.hostname, func() (bool, string) {
			mine = filter(sw.violationsOf(t, "agent"), func(r record) bool { return r.Host == n.hostname })
			return len(mine) >= 2, dumpRecords(mine)
		})
		a1, a2 := mine[0].Swarm, mine[1].Swarm
		if a1.TaskID == a2.TaskID || a1.Slot != 0 || a2.Slot != 0 || a1.NodeID != n.nodeID || a2.NodeID != n.nodeID ||
			!strings.Contains(mine[0].Detail, "a new task takes the same node") {
			t.Errorf("%s: global service agent: want two tasks on node %s, no slot, detail naming the node:\n%s", n.hostname, n.nodeID, dumpRecords(mine[:2]))
		}
	}
	t.Logf("docker service ps agent:\n%s", m.docker(t, "service", "ps", "agent"))
	t.Logf("docker service ls:\n%s", m.docker(t, "service", "ls"))

	// Measured: a service's --label stays on the service, its
	// --container-label reaches the task's container (docs/fleet.md).
	var labels map[string]string
	waitFor(t, "ok-labels' task running", func() (bool, string) {
		for _, n := range sw.nodes() {
			id := n.docker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=ok-labels")
			if id != "" && !strings.Contains(id, "\n") {
				labels = map[string]string{}
				if err := json.Unmarshal([]byte(n.docker(t, "inspect", "-f", "{{json .Config.Labels}}", id)), &labels); err != nil {
					t.Fatal(err)
				}
				return true, ""
			}
		}
		return false, m.docker(t, "service", "ps", "ok-labels")
	})
	if _, ok := labels["team"]; ok || labels["c"] != "y" || labels["com.docker.swarm.service.name"] != "ok-labels" {
		t.Errorf("ok-labels' task container: labels %v; want no team (a service label), c=y (a container label) and swarm's", labels)
	}

	// The allowed service's task: attributed, no violation, running.
	if v := sw.violationsOf(t, "ok-x"); len(v) != 0 {
		t.Errorf("ok-x, allowed, has violations:\n%s", dumpRecords(v))
	}
	var attr []record
	for _, n := range sw.nodes() {
		attr = append(attr, filter(readAudit(t, n.auditLog), func(r record) bool {
			return r.Event == "endpoint.attribute" && r.Swarm != nil && r.Swarm.ServiceName == "ok-x"
		})...)
	}
	if len(attr) != 1 {
		t.Errorf("want one endpoint.attribute of ok-x's task; got:\n%s", dumpRecords(attr))
	}
	if got := m.docker(t, "service", "ps", "--filter", "desired-state=running", "--format", "{{.CurrentState}}", "ok-x"); !strings.HasPrefix(got, "Running") {
		t.Errorf("ok-x's task: %s, want Running", got)
	}
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

//go:build e2e

package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// swarmLoop bounds the waits on swarm's restarts: each round is the
// watcher's stop (5 s, busybox's sleep ignores SIGTERM) plus swarm's
// restart delay (5 s by default) plus the task's start.
const swarmLoop = 90 * time.Second

// swarmOf is a record's swarm identity, read from its line (the suite's own
// copy of the format).
type swarmOf struct {
	Swarm *struct {
		ServiceName string `json:"service_name"`
		ServiceID   string `json:"service_id"`
		TaskID      string `json:"task_id"`
		TaskName    string `json:"task_name"`
		Slot        int    `json:"slot"`
		NodeID      string `json:"node_id"`
	} `json:"swarm"`
}

func swarmIdentity(t testing.TB, r record) swarmOf {
	t.Helper()
	var s swarmOf
	if err := json.Unmarshal([]byte(r.line), &s); err != nil {
		t.Fatalf("record %s: %v", r.line, err)
	}
	return s
}

// violationsOf returns the policy.violation records of service's tasks.
func violationsOf(t testing.TB, recs []record, service string) []record {
	t.Helper()
	return filter(recs, func(r record) bool {
		s := swarmIdentity(t, r)
		return r.Event == "policy.violation" && s.Swarm != nil && s.Swarm.ServiceName == service
	})
}

// waitViolations polls the trail until service's tasks have n violations.
func waitViolations(t testing.TB, auditLog, service string, n int) []record {
	t.Helper()
	deadline := time.Now().Add(swarmLoop)
	for {
		v := violationsOf(t, readAudit(t, auditLog), service)
		if len(v) >= n {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d policy.violation of service %s within %s, want %d; trail:\n%s", len(v), service, swarmLoop, n, dumpRecords(readAudit(t, auditLog)))
		}
		time.Sleep(200 * time.Millisecond)
	}
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

// waitEnded waits until service has no task left to run and its tasks at
// least n violations, and returns those.
func waitEnded(t testing.TB, e *engine, auditLog, service string, n int) []record {
	t.Helper()
	deadline := time.Now().Add(swarmLoop)
	for {
		running := e.docker(t, "service", "ps", "-q", "--filter", "desired-state=running", service)
		if v := violationsOf(t, readAudit(t, auditLog), service); running == "" && len(v) >= n {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s still has a task to run, or fewer than %d violations, after %s:\n%s", service, n, swarmLoop, e.docker(t, "service", "ps", service))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// singleNodeSwarm is one engine in a one-node swarm with the managed
// plugin enabled under the policy; it returns the plugin's name and its
// audit log.
func singleNodeSwarm(t *testing.T, e *engine, policy ...string) (string, string) {
	t.Helper()
	varLog := e.mkdir(t, "sp-log")
	name := "hp-swpol-" + randHex(t, 4) + ":latest"
	e.make(t, "plugin", "PLUGIN_NAME="+name, "BUILD="+filepath.Join(e.dir, "build"),
		"PLUGIN_SETTINGS=varlog.source="+varLog+" docker.source="+e.sock)
	// The policy's glob is set here, not through make's shell.
	e.docker(t, "plugin", "disable", "-f", name)
	e.docker(t, append([]string{"plugin", "set", name}, policy...)...)
	e.docker(t, "plugin", "enable", name)
	e.docker(t, "swarm", "init", "--advertise-addr", "127.0.0.1")
	return name, filepath.Join(varLog, "hostpass", "audit.jsonl")
}

// TestSwarmPolicy: with --policy-allow service:ok-* and --policy-stop, a
// task of service bad on a swarm-scoped hostpass network is stopped; swarm
// marks it failed and starts a new task in its slot, which is stopped too:
// the trail holds a violation per task, each with its own task ID and the
// same slot, and docker service ps the failed task under the new one. The
// loop ends with --restart-condition none. A task of ok-x runs.
func TestSwarmPolicy(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	driver, auditLog := singleNodeSwarm(t, e, "HOSTPASS_POLICY_ALLOW=service:ok-*", "HOSTPASS_POLICY_STOP=true")
	e.docker(t, "network", "create", "-d", driver, "--scope", "swarm", "sp-net")
	// Runs before the plugin and the engine go (cleanups run last first).
	t.Cleanup(func() { e.dockerTry("service", "rm", "bad", "ok-x", "capped", "clean", "agent") })

	// A short grace: the engine's stop at the end need not wait 10 s on it.
	e.docker(t, "service", "create", "--detach", "--name", "ok-x", "--stop-grace-period", "1s", "--network", "sp-net", image, "sleep", "300")
	created := time.Now()
	e.docker(t, "service", "create", "--detach", "--name", "bad", "--network", "sp-net", image, "sleep", "300")
	// One restart allowed; a process that exits 0 on SIGTERM; a global
	// service.
	e.docker(t, "service", "create", "--detach", "--name", "capped", "--restart-max-attempts", "1", "--network", "sp-net", image, "sleep", "300")
	e.docker(t, "service", "create", "--detach", "--name", "clean", "--network", "sp-net", image, "sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait")
	e.docker(t, "service", "create", "--detach", "--name", "agent", "--mode", "global", "--network", "sp-net", image, "sleep", "300")

	v := waitViolations(t, auditLog, "bad", 2)
	t.Logf("service create to the second violation: %s", time.Since(created).Round(time.Second))
	first, second := swarmIdentity(t, v[0]).Swarm, swarmIdentity(t, v[1]).Swarm
	if first.TaskID == second.TaskID || first.Slot != 1 || second.Slot != 1 {
		t.Errorf("violations of tasks %s (slot %d) and %s (slot %d): want two tasks in slot 1", first.TaskID, first.Slot, second.TaskID, second.Slot)
	}
	for _, r := range v[:2] {
		if r.Action != "stopped" || r.Policy != "service:ok-*" || r.Container.ID == "" ||
			!strings.Contains(r.Detail, "a new task takes the same slot") || !strings.Contains(r.Detail, "docker service update --restart-condition none") {
			t.Errorf("violation: want action stopped, policy service:ok-*, and what swarm does next in detail; got:\n%s", r.line)
		}
	}
	t1, t2 := mustTime(t, v[0].Time), mustTime(t, v[1].Time)
	t.Logf("the first task ran %s from its start to its violation record, the stop included", t1.Sub(mustTime(t, v[0].Container.StartedAt)).Round(100*time.Millisecond))
	t.Logf("stop, restart delay and new task: %s from the first violation to the second", t2.Sub(t1).Round(100*time.Millisecond))
	if code := e.docker(t, "inspect", "-f", "{{.State.ExitCode}}", v[0].Container.ID); code != "137" {
		t.Errorf("the stopped task's container exited %s, want 137 (busybox's sleep ignores SIGTERM: killed after the 5 s stop timeout)", code)
	}

	// What the user sees: the failed task under its slot's new one.
	tasks := servicePS(t, e, "bad")
	t.Logf("docker service ps bad:\n%s", e.docker(t, "service", "ps", "bad"))
	byID := map[string]serviceTask{}
	for _, s := range tasks {
		byID[s.ID] = s
	}
	if s, ok := byID[first.TaskID]; !ok || s.Name != "bad.1" || s.Desired != "Shutdown" || !strings.HasPrefix(s.Current, "Failed") || s.Error != `"task: non-zero exit (137)"` {
		t.Errorf(`docker service ps: task %s: %+v; want bad.1, Shutdown, Failed, "task: non-zero exit (137)"; all: %+v`, first.TaskID, s, tasks)
	}
	if s, ok := byID[second.TaskID]; !ok || s.Name != "bad.1" {
		t.Errorf("docker service ps: task %s: %+v; want bad.1; all: %+v", second.TaskID, s, tasks)
	}

	// Ending the loop: the update's own task is stopped too, and nothing
	// replaces it.
	before := len(violationsOf(t, readAudit(t, auditLog), "bad"))
	e.docker(t, "service", "update", "--detach", "--restart-condition", "none", "bad")
	waitEnded(t, e, auditLog, "bad", before+1)
	t.Logf("after --restart-condition none: docker service ps bad:\n%s\nupdate status: %s", e.docker(t, "service", "ps", "bad"),
		e.docker(t, "service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}: {{.UpdateStatus.Message}}{{end}}", "bad"))

	// The auditor's view of the loop: one violation per task, all in slot 1.
	shown := run(t, hostpassBin(t), "audit", "show", "--json", "--service", "bad", "--event", "policy.violation", auditLog)
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(shown), "\n") {
		s := swarmIdentity(t, record{line: line}).Swarm
		if s == nil || s.Slot != 1 {
			t.Errorf("audit show --service bad --event policy.violation: %s, want a task of slot 1", line)
			continue
		}
		ids = append(ids, s.TaskID)
	}
	unique := map[string]bool{}
	for _, id := range ids {
		unique[id] = true
	}
	if len(ids) < 3 || len(unique) != len(ids) || ids[0] != first.TaskID || ids[1] != second.TaskID {
		t.Errorf("audit show --service bad --event policy.violation: tasks %v, want %s, %s, then the update's, each once", ids, first.TaskID, second.TaskID)
	}
	t.Logf("audit show --service bad --event policy.violation:\n%s", run(t, hostpassBin(t), "audit", "show", "--service", "bad", "--event", "policy.violation", auditLog))

	// --restart-max-attempts 1: the first task and one restart, then none.
	capped := waitEnded(t, e, auditLog, "capped", 2)
	t.Logf("docker service ps capped:\n%s", e.docker(t, "service", "ps", "capped"))
	if len(capped) != 2 {
		t.Errorf("capped (--restart-max-attempts 1): %d violations, want 2:\n%s", len(capped), dumpRecords(capped))
	}
	// A task whose process exits 0 at the stop's SIGTERM completes, and
	// the default restart condition (any) restarts it all the same.
	// The loop is faster: no 5 s wait for SIGKILL. The task before the
	// newest (swarm keeps 5 per slot and removes the older ones' containers).
	clean := waitViolations(t, auditLog, "clean", 2)
	stopped := clean[len(clean)-2]
	cleanFirst := swarmIdentity(t, stopped).Swarm.TaskID
	t.Logf("clean: %d violations, %s from the first to the last", len(clean), mustTime(t, clean[len(clean)-1].Time).Sub(mustTime(t, clean[0].Time)).Round(100*time.Millisecond))
	if code := e.docker(t, "inspect", "-f", "{{.State.ExitCode}}", stopped.Container.ID); code != "0" {
		t.Errorf("clean's stopped container exited %s, want 0 (it exits at SIGTERM)", code)
	}
	for _, s := range servicePS(t, e, "clean") {
		if s.ID == cleanFirst && (!strings.HasPrefix(s.Current, "Complete") || s.Error != "") {
			t.Errorf("docker service ps clean: task %s: %+v; want Complete, no error", s.ID, s)
		}
	}
	t.Logf("docker service ps clean:\n%s", e.docker(t, "service", "ps", "clean"))
	// A global service's task comes back on the same node, with no slot.
	agent := waitViolations(t, auditLog, "agent", 2)
	a1, a2 := swarmIdentity(t, agent[0]).Swarm, swarmIdentity(t, agent[1]).Swarm
	if a1.TaskID == a2.TaskID || a1.Slot != 0 || a2.Slot != 0 || a1.NodeID != a2.NodeID || a1.NodeID == "" ||
		!strings.Contains(agent[0].Detail, "a new task takes the same node") {
		t.Errorf("global service agent: want two tasks on one node, no slot, detail naming the node:\n%s", dumpRecords(agent[:2]))
	}
	t.Logf("docker service ps agent:\n%s", e.docker(t, "service", "ps", "agent"))
	t.Logf("docker service ls:\n%s", e.docker(t, "service", "ls"))

	// The allowed service's task: attributed, no violation, running.
	recs := readAudit(t, auditLog)
	if v := violationsOf(t, recs, "ok-x"); len(v) != 0 {
		t.Errorf("ok-x, allowed, has violations:\n%s", dumpRecords(v))
	}
	attr := filter(recs, func(r record) bool {
		s := swarmIdentity(t, r)
		return r.Event == "endpoint.attribute" && s.Swarm != nil && s.Swarm.ServiceName == "ok-x"
	})
	if len(attr) != 1 {
		t.Errorf("want one endpoint.attribute of ok-x's task; got:\n%s", dumpRecords(attr))
	}
	if got := e.docker(t, "service", "ps", "--filter", "desired-state=running", "--format", "{{.CurrentState}}", "ok-x"); !strings.HasPrefix(got, "Running") {
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

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// After a crash of dockerd the worker's endpoints get no Leave: each
// session ends at its endpoint.stale, observed late, with a duration up to
// when the container stopped, or unknown when Docker no longer said; the
// audit.restart between no longer hides the duration.
func TestSessionsStaleGolden(t *testing.T) {
	t.Setenv("HOSTPASS_AUDIT_LOG", "")
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	web := func(slot int, task string) *audit.SwarmTask {
		return &audit.SwarmTask{ServiceName: "web", ServiceID: "websvc00000000000000000w", TaskID: task, TaskName: "web." + string(rune('0'+slot)) + "." + task, Slot: slot, NodeID: node2ID}
	}
	ep := func(s int, e audit.Event, id string) audit.Record {
		return audit.Record{Time: at(s), Event: e, Outcome: audit.OK, Host: "node-2", Driver: "hostpass", NetworkID: netID, EndpointID: strings.Repeat(id, 8), Tag: "fleet"}
	}
	attr := func(s int, id, c string, sw *audit.SwarmTask) audit.Record {
		r := ep(s, audit.EndpointAttribute, id)
		started := at(s - 1)
		r.Container, r.Swarm, r.NetworkName = &audit.Container{ID: strings.Repeat(c, 32), Name: sw.TaskName, StartedAt: &started}, sw, fleetNet
		return r
	}
	stale := func(s int, id, c string, sw *audit.SwarmTask, end *time.Time) audit.Record {
		r := ep(s, audit.EndpointStale, id)
		r.Container, r.Swarm, r.NetworkName, r.ObservedLate, r.EndedAt = &audit.Container{ID: strings.Repeat(c, 32), Name: sw.TaskName}, sw, fleetNet, true, end
		r.Detail = "its container is no longer running and Docker sent no Leave for the endpoint"
		return r
	}
	ended := at(40)
	dir := filepath.Join(t.TempDir(), "node-2")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeLog(t, filepath.Join(dir, "audit.jsonl"), audit.Options{}, []audit.Record{
		ep(10, audit.EndpointJoin, "e3e3e3e3"), attr(11, "e3e3e3e3", "c3", web(3, "webtask3")),
		ep(12, audit.EndpointJoin, "e4e4e4e4"), attr(13, "e4e4e4e4", "c4", web(4, "webtask4")),
		{Time: at(50), Event: audit.Restart, Outcome: audit.OK, Host: "node-2"},
		stale(51, "e3e3e3e3", "c3", web(3, "webtask3"), &ended),
		stale(51, "e4e4e4e4", "c4", web(4, "webtask4"), nil),
	}, 0)
	code, got, shown := runOut(t, []string{"audit", "sessions", "--no-progress", dir}, map[string]string{dir: "$NODE2"})
	if code != 0 {
		t.Errorf("hostpass %q exits %d, want 0\n%s", shown, code, got)
	}
	checkGolden(t, "audit-sessions-stale", shown, []byte(got))
}

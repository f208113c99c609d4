package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// The fleet: two nodes of a swarm, each with its own plain log, every time
// fixed so that the output is the same on every run.
//
// node-1: a global --network host service's task (agent) from 0s to 50s;
// a replicated service's task (web.1) on hostpass network fleetnet from 10s
// to 40s.
// node-2: agent's task from 5s, cut by a watch.gap Docker's replay did not
// cover (15s-20s), its leave at 60s; web.2 joined at 12s, still attached
// at the log's end (70s); a plain container, lonely, in host mode at 70s.
const (
	fleetNet = "fleetnet"
	node1ID  = "n1aaaaaaaaaaaaaaaaaaaaaaa"
	node2ID  = "n2bbbbbbbbbbbbbbbbbbbbbbb"
)

func fleetRecords(host string) []audit.Record {
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	secs := func(f float64) *float64 { return &f }
	agent := func(node, task string) *audit.SwarmTask {
		return &audit.SwarmTask{ServiceName: "agent", ServiceID: "agentsvc0000000000000000a", TaskID: task, TaskName: "agent." + node + "." + task, NodeID: node}
	}
	web := func(slot int, node string) *audit.SwarmTask {
		task := fmt.Sprintf("webtask%d", slot)
		return &audit.SwarmTask{ServiceName: "web", ServiceID: "websvc00000000000000000w", TaskID: task, TaskName: fmt.Sprintf("web.%d.%s", slot, task), Slot: slot, NodeID: node}
	}
	cont := func(id, name string, started time.Time) *audit.Container {
		return &audit.Container{ID: strings.Repeat(id, 64/len(id)), Name: name, StartedAt: &started}
	}
	ep := func(s int, e audit.Event, id string) audit.Record {
		return audit.Record{Time: at(s), Event: e, Outcome: audit.OK, Driver: "hostpass", NetworkID: netID, EndpointID: strings.Repeat(id, 8)}
	}
	var recs []audit.Record
	switch host {
	case "node-1":
		a := agent(node1ID, "agtask1")
		c := cont("a1", a.TaskName, at(0))
		attr := ep(11, audit.EndpointAttribute, "e1e1e1e1")
		attr.Container, attr.Swarm, attr.NetworkName = cont("b1", "web.1.webtask1", at(10)), web(1, node1ID), fleetNet
		recs = []audit.Record{
			{Time: at(0), Event: audit.HostJoin, Outcome: audit.OK, Container: c, Swarm: a},
			ep(10, audit.EndpointJoin, "e1e1e1e1"),
			attr,
			ep(40, audit.EndpointLeave, "e1e1e1e1"),
			{Time: at(50), Event: audit.HostLeave, Outcome: audit.OK, Container: c, Swarm: a, HostModeSeconds: secs(50)},
		}
	case "node-2":
		a := agent(node2ID, "agtask2")
		c := cont("a2", a.TaskName, at(5))
		attr := ep(13, audit.EndpointAttribute, "e2e2e2e2")
		attr.Container, attr.Swarm, attr.NetworkName = cont("b2", "web.2.webtask2", at(12)), web(2, node2ID), fleetNet
		recs = []audit.Record{
			{Time: at(5), Event: audit.HostJoin, Outcome: audit.OK, Container: c, Swarm: a},
			ep(12, audit.EndpointJoin, "e2e2e2e2"),
			attr,
			{Time: at(20), Event: audit.WatchGap, Outcome: audit.OK, Gap: &audit.Gap{From: at(15), To: at(20)}},
			{Time: at(60), Event: audit.HostLeave, Outcome: audit.OK, Container: c, Swarm: a, HostModeSeconds: secs(55)},
			{Time: at(70), Event: audit.HostJoin, Outcome: audit.OK, Container: cont("c3", "lonely", at(70))},
		}
	default: // another node, as node-1
		recs = fleetRecords("node-1")
	}
	for i := range recs {
		recs[i].Host = host
	}
	return recs
}

// fleetDirs writes node-1's and node-2's logs, each in a folder of its own.
func fleetDirs(t *testing.T) (node1, node2 string) {
	t.Helper()
	base := t.TempDir()
	node1, node2 = filepath.Join(base, "node-1"), filepath.Join(base, "node-2")
	for _, d := range []string{node1, node2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeLog(t, filepath.Join(d, "audit.jsonl"), audit.Options{}, fleetRecords(filepath.Base(d)), 0)
	}
	return node1, node2
}

// syslogLine is a record's line as rsyslog's received.log keeps it
// (docs/offhost.md): the RFC 5424 message the sink sends.
func syslogLine(t *testing.T, line string) string {
	t.Helper()
	var r audit.Record
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`<86>1 %s %s hostpass 4242 %s [hostpass@32473 seq="%d" prev="%s" hash="%s"] %s`,
		r.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), r.Host, r.Event, r.Seq, r.Prev, r.Hash, line)
}

// collectorFile writes what a collector received of the dirs' logs, in
// the order of their records' times, and extra lines at the start.
func collectorFileOf(t *testing.T, extra []string, dirs ...string) string {
	t.Helper()
	type timed struct {
		at   time.Time
		line string
	}
	var all []timed
	for _, d := range dirs {
		for _, l := range strings.Split(strings.TrimSpace(string(read(t, d, "audit.jsonl"))), "\n") {
			var r audit.Record
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			all = append(all, timed{r.Time, syslogLine(t, l)})
		}
	}
	for i := 1; i < len(all); i++ { // stable insertion sort: a collector's arrival order
		for j := i; j > 0 && all[j].at.Before(all[j-1].at); j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	var b strings.Builder
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	for _, l := range all {
		b.WriteString(l.line + "\n")
	}
	path := filepath.Join(t.TempDir(), "received.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

// runOut runs hostpass with args and returns its exit code and output,
// every temporary path replaced by a name.
func runOut(t *testing.T, args []string, names map[string]string) (int, string, []string) {
	t.Helper()
	var out bytes.Buffer
	code := run(args, &out, &out)
	got := out.String()
	shown := append([]string(nil), args...)
	for path, name := range names {
		got = strings.ReplaceAll(got, path, name)
		for i := range shown {
			shown[i] = strings.ReplaceAll(shown[i], path, name)
		}
	}
	return code, got, shown
}

func TestFleetGolden(t *testing.T) {
	t.Setenv("HOSTPASS_AUDIT_LOG", "")
	node1, node2 := fleetDirs(t)
	foreign := `<38>1 2026-11-27T10:00:00.000000Z node-1 sshd 311 - - Accepted publickey for root`
	cutLine := syslogLine(t, strings.Split(string(read(t, node2, "audit.jsonl")), "\n")[0])
	cutLine = cutLine[:len(cutLine)-80] // the collector cut its body
	collected := collectorFileOf(t, []string{foreign, cutLine, "<86>1 2026-11-27T10:00:00Z node-1 hostpass 4242"}, node1, node2)
	names := map[string]string{node1: "$NODE1", node2: "$NODE2", collected: "$COLLECTOR/received.log"}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"audit-show-fleet", []string{"audit", "show", "--no-progress", node1, node2}, 0},
		{"audit-show-fleet-collector", []string{"audit", "show", "--no-progress", collected}, 0},
		{"audit-show-fleet-host", []string{"audit", "show", "--no-progress", "--host", "node-2", node1, node2}, 0},
		{"audit-show-fleet-service", []string{"audit", "show", "--no-progress", "--service", "web", node1, node2}, 0},
		{"audit-show-fleet-follow", []string{"audit", "show", "--no-progress", "--follow", node1, node2}, 2},
		{"audit-sessions-fleet", []string{"audit", "sessions", "--no-progress", node1, node2}, 0},
		{"audit-sessions-service", []string{"audit", "sessions", "--no-progress", "--service", "agent", node1, node2}, 0},
		{"audit-sessions-one", []string{"audit", "sessions", "--no-progress", node2}, 0},
		{"audit-verify-fleet-ok", []string{"audit", "verify", "--no-progress", node1, node2}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, got, shown := runOut(t, tc.args, names)
			if code != tc.code {
				t.Errorf("hostpass %q exits %d, want %d\n%s", shown, code, tc.code, got)
			}
			checkGolden(t, tc.name, shown, []byte(got))
		})
	}
}

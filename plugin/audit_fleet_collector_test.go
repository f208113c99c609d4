package main

import (
	"path/filepath"

	"github.com/hostpass/hostpass/audit"
	"strings"
	"testing"
)

// A collector's line sent as node-3 whose record says it is node-1's is
// shown, and its session listed, under node-3 (the HOSTNAME the collector
// recorded), saying what it claims; --host node-1 does not pick it up.
func TestFleetCollectorRowHostIsHostname(t *testing.T) {
	node1, node2 := fleetDirs(t)
	lines := strings.Split(strings.TrimSpace(string(read(t, node1, "audit.jsonl"))), "\n")
	forged := strings.Replace(syslogLine(t, lines[0]), " node-1 hostpass ", " node-3 hostpass ", 1) // agent's host.join
	collected := collectorFileOf(t, []string{forged}, node2)
	_, got, _ := runOut(t, []string{"audit", "show", "--no-progress", "--event", "host.join", collected}, nil)
	rows := strings.Split(strings.TrimSpace(got), "\n")
	if len(rows) < 2 || !strings.HasPrefix(rows[1], "node-3  ") || !strings.HasSuffix(rows[1], `record claims host "node-1", sent to the collector as "node-3"`) {
		t.Errorf("show:\n%s", got)
	}
	_, only1, _ := runOut(t, []string{"audit", "show", "--no-progress", "--host", "node-1", collected}, nil)
	if only1 != "" {
		t.Errorf("show --host node-1 picked up a line sent as node-3:\n%s", only1)
	}
	_, only3, _ := runOut(t, []string{"audit", "show", "--no-progress", "--host", "node-3", collected}, nil)
	if rows := strings.Split(strings.TrimSpace(only3), "\n"); len(rows) != 2 || !strings.HasPrefix(rows[1], "node-3  ") {
		t.Errorf("show --host node-3:\n%s", only3)
	}
	_, only2, _ := runOut(t, []string{"audit", "show", "--no-progress", "--host", "node-2", collected}, nil)
	if strings.Contains(only2, "node-3") || strings.Count(only2, "\n") != len(fleetRecords("node-2"))+1 {
		t.Errorf("show --host node-2:\n%s", only2)
	}
	_, sessions, _ := runOut(t, []string{"audit", "sessions", "--no-progress", collected}, nil)
	if !strings.Contains(sessions, "\nnode-3  ") || !strings.Contains(sessions, `records claim host "node-1", sent to the collector as "node-3"`) {
		t.Errorf("sessions:\n%s", sessions)
	}
}

// Names and texts from a record reach show's and sessions' tables with
// their control characters escaped: a newline in a label forges no row.
func TestFleetTablesEscapeControlCharacters(t *testing.T) {
	node1, node2 := fleetDirs(t)
	started := start.Add(80e9)
	forged := audit.Record{Time: started, Event: audit.HostJoin, Outcome: audit.OK, Host: "node-1", Detail: "x\x1b[2Jy",
		Container: &audit.Container{ID: strings.Repeat("f0", 32), Name: "evil\nnode-9  FORGED", StartedAt: &started},
		Swarm:     &audit.SwarmTask{ServiceName: "svc\tX", ServiceID: "evilsvc", TaskName: "t\u202eask\nnode-9  FORGED"}}
	writeLog(t, filepath.Join(node1, "audit.jsonl"), audit.Options{}, []audit.Record{forged}, 0)
	for _, args := range [][]string{
		{"audit", "show", "--no-progress", node1, node2},
		{"audit", "show", "--no-progress", filepath.Join(node1, "audit.jsonl")},
		{"audit", "sessions", "--no-progress", node1, node2},
	} {
		_, got, _ := runOut(t, args, nil)
		if strings.Contains(got, "\nnode-9") || strings.ContainsAny(got, "\x1b\t\u202e") {
			t.Errorf("%v: a control character reached the table:\n%q", args[1], got)
		}
		if !strings.Contains(got, `\n`) {
			t.Errorf("%v: the newline is not shown escaped:\n%s", args[1], got)
		}
	}
}

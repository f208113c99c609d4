package main

import (
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

package main

import (
	"os"
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

// --service resolves as docker does: an exact ID, then an exact name,
// then an ID prefix of one service alone; a prefix of several is refused,
// naming them. A service named "a" does not pick up another's tasks whose
// ID starts with "a".
func TestFleetServiceResolvesLikeDocker(t *testing.T) {
	node1, node2 := fleetDirs(t)
	started := start.Add(80e9)
	a := audit.Record{Time: started, Event: audit.HostJoin, Outcome: audit.OK, Host: "node-1",
		Container: &audit.Container{ID: strings.Repeat("d0", 32), Name: "a.1.x", StartedAt: &started},
		Swarm:     &audit.SwarmTask{ServiceName: "a", ServiceID: "zzsvc000000000000000000a", TaskName: "a.1.x"}}
	writeLog(t, filepath.Join(node1, "audit.jsonl"), audit.Options{}, []audit.Record{a}, 0)
	for _, cmd := range []string{"show", "sessions"} {
		_, got, _ := runOut(t, []string{"audit", cmd, "--no-progress", "--service", "a", node1, node2}, nil)
		if strings.Contains(got, "agent") || !strings.Contains(got, "a.1.x") {
			t.Errorf("%s --service a:\n%s", cmd, got)
		}
		_, got, _ = runOut(t, []string{"audit", cmd, "--no-progress", "--service", "agentsvc", node1, node2}, nil)
		if !strings.Contains(got, "agent.") || strings.Contains(got, "a.1.x") {
			t.Errorf("%s --service agentsvc (a unique ID prefix):\n%s", cmd, got)
		}
		code, got, _ := runOut(t, []string{"audit", cmd, "--no-progress", "--service", "w", node1, node2}, nil)
		if code != 0 || !strings.Contains(got, "web") {
			t.Errorf("%s --service w (one service's ID prefix): exit %d\n%s", cmd, code, got)
		}
	}
	b := a
	b.Swarm = &audit.SwarmTask{ServiceName: "b", ServiceID: "agentsvc0000000000000000b", TaskName: "b.1.x"}
	b.Container = &audit.Container{ID: strings.Repeat("e0", 32), Name: "b.1.x", StartedAt: &started}
	writeLog(t, filepath.Join(node2, "audit.jsonl"), audit.Options{}, []audit.Record{b}, 0)
	for _, args := range [][]string{
		{"audit", "show", "--no-progress", "--service", "agentsvc", node1, node2},
		{"audit", "sessions", "--no-progress", "--service", "agentsvc", node1, node2},
		{"audit", "show", "--no-progress", "--service", "agentsvc", filepath.Join(node2, "audit.jsonl")},
	} {
		code, got, _ := runOut(t, args, nil)
		want := "hostpass audit " + args[1] + ": --service agentsvc: refused: no service has that name or ID, and it is the start of 2 services' IDs: agentsvc0000000000000000a (agent), agentsvc0000000000000000b (b); "
		if code != exitUsage || !strings.HasPrefix(got, want) {
			t.Errorf("%v: exit %d\n%s\nwant %s", args, code, got, want)
		}
	}
}

// A collector's line over 16 MiB stops show and sessions with an error
// naming the file and the line.
func TestFleetLongCollectorLineNamed(t *testing.T) {
	node1, node2 := fleetDirs(t)
	collected := collectorFileOf(t, []string{"<38>1 2026-11-27T10:00:00Z node-1 sshd 1 - - hello", "<38>1 2026-11-27T10:00:00Z node-1 sshd 1 - - " + strings.Repeat("x", 17<<20)}, node1, node2)
	for _, cmd := range []string{"show", "sessions"} {
		code, got, _ := runOut(t, []string{"audit", cmd, "--no-progress", collected}, nil)
		if want := "hostpass audit " + cmd + ": " + collected + " line 2: line longer than 16 MiB, and a record is at most 64 KiB"; code != exitFailed || !strings.HasPrefix(got, want) {
			t.Errorf("%s: exit %d\n%.300s\nwant %s", cmd, code, got, want)
		}
	}
}

// show --json over a collector's file with CRLF lines prints each record
// with one line ending, no \r.
func TestFleetJSONStripsCR(t *testing.T) {
	node1, node2 := fleetDirs(t)
	collected := collectorFileOf(t, nil, node1, node2)
	crlf := filepath.Join(t.TempDir(), "received.log")
	if err := os.WriteFile(crlf, []byte(strings.ReplaceAll(string(read(t, filepath.Dir(collected), "received.log")), "\n", "\r\n")), 0o640); err != nil {
		t.Fatal(err)
	}
	_, got, _ := runOut(t, []string{"audit", "show", "--no-progress", "--json", crlf}, nil)
	if strings.Contains(got, "\r") || strings.Count(got, "\n") != len(fleetRecords("node-1"))+len(fleetRecords("node-2")) {
		t.Errorf("show --json of CRLF lines:\n%q", got)
	}
}

// One FILE of a rotated log beside a DIR: the FILE's log is read with the
// files rotated from it, as one log's FILE is read alone.
func TestFleetRotatedFileBesideDir(t *testing.T) {
	node1, _ := fleetDirs(t)
	dir := filepath.Join(t.TempDir(), "node-2")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeLog(t, filepath.Join(dir, "audit.jsonl"), audit.Options{}, fleetRecords("node-2"), 2)
	if ms, _ := filepath.Glob(filepath.Join(dir, "audit.jsonl.*")); len(ms) == 0 {
		t.Fatal("no rotated file")
	}
	_, got, _ := runOut(t, []string{"audit", "show", "--no-progress", "--host", "node-2", node1, filepath.Join(dir, "audit.jsonl")}, nil)
	if n := strings.Count(got, "\nnode-2 "); n != len(fleetRecords("node-2")) {
		t.Errorf("%d rows of node-2, want %d:\n%s", n, len(fleetRecords("node-2")), got)
	}
}

// A DIR beside others that holds no log is refused, saying what a DIR
// must hold.
func TestFleetShowDirWithoutLog(t *testing.T) {
	node1, _ := fleetDirs(t)
	empty := t.TempDir()
	code, got, _ := runOut(t, []string{"audit", "show", "--no-progress", empty, node1}, nil)
	if want := "hostpass audit show: " + empty + " holds no audit log: a DIR must hold one host's log, audit.jsonl (or another *.jsonl) and the files rotated from it, or a syslog collector's file, received.log\n"; code != exitFailed || got != want {
		t.Errorf("exit %d\n%s\nwant %s", code, got, want)
	}
}

// A line put in a collector's file under a host's HOSTNAME, whose prev is
// not the hash of that host's record before it, is marked in NOTE; an
// honest file, even with every message twice, has no mark.
func TestFleetCollectorChainBreakMarked(t *testing.T) {
	node1, node2 := fleetDirs(t)
	honest := collectorFileOf(t, nil, node1, node2)
	lines := strings.SplitAfter(string(read(t, filepath.Dir(honest), "received.log")), "\n")
	var twice []string
	for _, l := range lines {
		twice = append(twice, l, l)
	}
	dup := filepath.Join(t.TempDir(), "received.log")
	if err := os.WriteFile(dup, []byte(strings.Join(twice, "")), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{honest, dup} {
		if _, got, _ := runOut(t, []string{"audit", "show", "--no-progress", f}, nil); strings.Contains(got, "chain break") {
			t.Errorf("an honest file is marked:\n%s", got)
		}
	}
	first := lineWith(t, lines, `seq="1"`) // node-1's first record
	zero, ff := strings.Repeat("0", 64), strings.Repeat("f", 64)
	forged := `<86>1 2026-11-27T10:00:00.500000Z node-1 hostpass 4242 host.leave [hostpass@32473 seq="2" prev="` + zero + `" hash="` + ff + `"] ` +
		`{"time":"2026-11-27T10:00:00.5Z","seq":2,"event":"network.delete","schema":2,"outcome":"ok","host":"node-1","prev":"` + zero + `","hash":"` + ff + "\"}\n"
	withForged := append(append(append([]string(nil), lines[:first+1]...), forged), lines[first+1:]...)
	path := filepath.Join(t.TempDir(), "received.log")
	if err := os.WriteFile(path, []byte(strings.Join(withForged, "")), 0o640); err != nil {
		t.Fatal(err)
	}
	_, got, _ := runOut(t, []string{"audit", "show", "--no-progress", "--host", "node-1", path}, nil)
	rows := strings.Split(strings.TrimSpace(got), "\n")
	if len(rows) < 3 || !strings.Contains(rows[2], "network.delete") || !strings.HasSuffix(rows[2], "chain break: its prev is not the hash of seq 1 as node-1 sent it") {
		t.Errorf("the forged line is not marked:\n%s", got)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/bench"
	"github.com/hostpass/hostpass/driver"
	"github.com/hostpass/hostpass/server"
)

// In tests the executable is the test binary: a no-op child run as
// `bench --serve-noop` would run every test again, each starting children
// of its own. A test that wants a child sets noopCommand to a helper.
func init() {
	noopCommand = func(string, string) (*exec.Cmd, error) {
		return nil, errors.New("no noopCommand set in this test: the test binary is not hostpass")
	}
}

// startDaemon serves the real handler, driver and audit log on a unix socket
// in a temp dir, and returns the socket and the audit log's path (auditPath
// when given).
func startDaemon(t *testing.T, auditPath string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "hp.sock")
	if auditPath == "" {
		auditPath = filepath.Join(dir, "audit.jsonl")
	}
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	entry := logrus.NewEntry(logger)
	log := audit.Open(auditPath, nil)
	d, err := driver.New(driver.Config{Name: "hp", Hostname: "node1", StateDir: filepath.Join(dir, "state"), Audit: log, Log: entry})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: server.New(d, entry)}
	go srv.Serve(l)
	t.Cleanup(func() {
		srv.Close()
		log.Close()
	})
	return socket, auditPath
}

// events counts the audit log's records by event.
func events(t *testing.T, path string) map[audit.Event]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := map[audit.Event]int{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var rec struct{ Event audit.Event }
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		n[rec.Event]++
	}
	return n
}

func TestBenchJoinsAreAudited(t *testing.T) {
	socket, auditPath := startDaemon(t, "")
	var out, errOut bytes.Buffer
	code := runCmd("bench", []string{"--socket", socket, "--calls", "200", "--clients", "4"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"op=join ", " clients=4 ", " calls=200 ", " errors=0 ", " rate=", " p50=", " p99="} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary %q lacks %q", out.String(), want)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("want one summary line, got %d: %q", n, out.String())
	}
	got := events(t, auditPath)
	if got[audit.EndpointJoin] != 200 {
		t.Errorf("audit log has %d %s records, want 200 (all: %v)", got[audit.EndpointJoin], audit.EndpointJoin, got)
	}
	if got[audit.NetworkCreate] != 1 || got[audit.NetworkDelete] != 1 {
		t.Errorf("want bench to create and delete its own network once each, audit log has %v", got)
	}
}

// --op container times CreateEndpoint+Join, then leaves and deletes, untimed,
// every endpoint it created, as dockerd would: the daemon does not end the
// run holding them. --op lifecycle times all four calls.
func TestBenchDeletesTheEndpointsItCreated(t *testing.T) {
	for _, op := range []string{"container", "lifecycle", "create-endpoint"} {
		t.Run(op, func(t *testing.T) {
			socket, auditPath := startDaemon(t, "")
			var out, errOut bytes.Buffer
			code := runCmd("bench", []string{"--socket", socket, "--op", op, "--calls", "50", "--clients", "4"}, &out, &errOut)
			if code != 0 || errOut.Len() != 0 || !strings.Contains(out.String(), " calls=50 errors=0 ") {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
			}
			joins := 50
			if op == "create-endpoint" {
				joins = 0
			}
			got := events(t, auditPath)
			if got[audit.EndpointCreate] != 50 || got[audit.EndpointJoin] != joins || got[audit.EndpointLeave] != joins || got[audit.EndpointDelete] != 50 {
				t.Errorf("audit log has %v; want 50 endpoint creates and deletes, %d joins and leaves", got, joins)
			}
		})
	}
}

// givenNetwork is a network the bench did not create: the driver adopts it.
const givenNetwork = "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

func TestBenchJSONByDuration(t *testing.T) {
	socket, auditPath := startDaemon(t, "")
	var out, errOut bytes.Buffer
	code := runCmd("bench", []string{"--socket", socket, "--duration", "200ms", "--clients", "2", "--op", "create-endpoint", "--network", givenNetwork, "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	var sum bench.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if sum.Op != "create-endpoint" || sum.Clients != 2 || sum.Calls < 1 || sum.Errors != 0 || sum.Rate <= 0 || sum.P99Ms < sum.P50Ms {
		t.Errorf("summary %+v", sum)
	}
	if sum.DurationS < 0.2 || sum.DurationS > 0.2+bench.CallTimeout.Seconds() {
		t.Errorf("ran %.3fs for --duration 200ms", sum.DurationS)
	}
	got := events(t, auditPath)
	if got[audit.EndpointCreate] != sum.Calls || got[audit.NetworkCreate] != 0 {
		t.Errorf("want %d %s records on the given network and no network created, audit log has %v", sum.Calls, audit.EndpointCreate, got)
	}
}

func TestBenchCountsRefusedCalls(t *testing.T) {
	// An audit log under a regular file, unwritable even for root: every
	// join is refused.
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	socket, _ := startDaemon(t, filepath.Join(notDir, "audit.jsonl"))
	var out, errOut bytes.Buffer
	code := runCmd("bench", []string{"--socket", socket, "--calls", "20", "--clients", "2", "--network", givenNetwork}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), " calls=20 errors=20 ") ||
		!strings.Contains(errOut.String(), "20 of 20 calls failed; first: NetworkDriver.Join: HTTP 503: audit log unavailable") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s\nwant exit 1, 20 errors and the first one's text", code, out.String(), errOut.String())
	}
}

func TestBenchRefusals(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no socket", []string{"--calls", "1"}, 2, "--socket is required"},
		{"unknown op", []string{"--socket", missing, "--op", "leave"}, 2, `unknown --op "leave"; accepted: join, create-endpoint, capabilities`},
		{"no clients", []string{"--socket", missing, "--clients", "0"}, 2, "--clients 0 is out of range; accepted: 1 to 4096"},
		{"both bounds", []string{"--socket", missing, "--calls", "10", "--duration", "1s"}, 2, "--duration and --calls both given; accepted: one of them"},
		{"no calls", []string{"--socket", missing, "--calls", "0"}, 2, "--calls 0 is out of range; accepted: 1 or more"},
		{"zero duration", []string{"--socket", missing, "--duration", "0s"}, 2, "--duration 0s is out of range; accepted: more than 0"},
		{"bad duration", []string{"--socket", missing, "--duration", "ten"}, 2, `invalid argument "ten" for "--duration" flag`},
		{"stray argument", []string{"--socket", missing, "now"}, 2, `unexpected argument "now"`},
		{"nobody answers", []string{"--socket", missing, "--calls", "1"}, 1, "no hostpass daemon answers on " + missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runCmd("bench", tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(errOut.String(), tc.stderr) || out.Len() != 0 {
				t.Errorf("hostpass bench %q = %d\nstdout: %s\nstderr: %s\nwant %d, empty stdout, stderr with %q",
					tc.args, code, out.String(), errOut.String(), tc.code, tc.stderr)
			}
		})
	}
}

// runCmd runs `hostpass command args...` as main does.
func runCmd(command string, args []string, stdout, stderr io.Writer) int {
	return run(append([]string{command}, args...), stdout, stderr)
}

func TestBenchBaselineInProcess(t *testing.T) {
	socket, auditPath := startDaemon(t, "")
	fsyncDir := t.TempDir()
	var out, errOut bytes.Buffer
	code := runCmd("bench", []string{"--socket", socket, "--baseline", "--noop", "in-process", "--op", "container",
		"--clients", "1", "--duration", "100ms", "--rounds", "2", "--fsync-dir", fsyncDir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"op=container clients=1: 2 rounds, each side 100ms, no-op driver, floor driver (in-process), then hostpass",
		"round 1: no-op ", "round 2: no-op ", "overall: no-op ",
		"fsync floor: ", "hostpass at 1 client: ", "floor driver at 1 client: ",
	}
	if len(lines) != len(want) {
		t.Fatalf("want %d lines, got %d:\n%s", len(want), len(lines), out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q; want it to start with %q", i+1, lines[i], w)
		}
	}
	for _, l := range lines[1:4] {
		if !strings.Contains(l, "/s") || !strings.Contains(l, "  hostpass ") || !strings.Contains(l, "  ratio ") || strings.Contains(l, "ratio 0.000x") {
			t.Errorf("round line %q lacks both rates and a ratio", l)
		}
		if !strings.Contains(l, "  floor ") || !strings.Contains(l, "  hostpass/floor ") || strings.Contains(l, "hostpass/floor 0.000x") {
			t.Errorf("round line %q lacks the floor driver's rate and hostpass's ratio to it", l)
		}
	}
	if !strings.Contains(lines[6], "; hostpass ") || !strings.Contains(lines[6], "x (rounds ") || !strings.Contains(lines[6], "time per call ") {
		t.Errorf("floor driver line %q lacks hostpass's ratio, its range and the time per call", lines[6])
	}
	if !strings.Contains(lines[4], " in "+fsyncDir+", 2 per container: ") || !strings.Contains(lines[5], "x the fsync floor") {
		t.Errorf("floor lines:\n%s\n%s", lines[4], lines[5])
	}
	if ents, _ := os.ReadDir(fsyncDir); len(ents) != 0 {
		t.Errorf("the fsync floor and the floor driver left %d files in %s", len(ents), fsyncDir)
	}
	// Every container hostpass answered is audited: a create and a join each.
	got := events(t, auditPath)
	if got[audit.EndpointCreate] == 0 || got[audit.EndpointCreate] != got[audit.EndpointJoin] {
		t.Errorf("want as many %s as %s records, and some; audit log has %v", audit.EndpointCreate, audit.EndpointJoin, got)
	}
}

func TestBenchBaselineRefusals(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"rounds without baseline", []string{"--socket", missing, "--rounds", "2"}, "--rounds, --fsync-dir and --noop need --baseline"},
		{"fsync-dir without baseline", []string{"--socket", missing, "--fsync-dir", "/tmp"}, "--rounds, --fsync-dir and --noop need --baseline"},
		{"json", []string{"--socket", missing, "--baseline", "--json"}, "--json and --baseline both given; accepted: one of them"},
		{"calls", []string{"--socket", missing, "--baseline", "--calls", "10"}, "--calls and --baseline both given; accepted: --duration with --baseline"},
		{"no rounds", []string{"--socket", missing, "--baseline", "--rounds", "0"}, "--rounds 0 is out of range; accepted: 1 to 100"},
		{"unknown noop", []string{"--socket", missing, "--baseline", "--noop", "thread"}, `unknown --noop "thread"; accepted: child, in-process`},
		{"missing fsync-dir", []string{"--socket", missing, "--baseline", "--fsync-dir", missing + ".d"},
			"--fsync-dir " + missing + ".d: stat " + missing + ".d: no such file or directory; accepted: an existing folder, the audit log's, where the floor driver fsyncs"},
		{"fsync-dir a file", []string{"--socket", missing, "--baseline", "--fsync-dir", "/etc/hostname"},
			"--fsync-dir /etc/hostname: not a folder; accepted: an existing folder, the audit log's, where the floor driver fsyncs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runCmd("bench", tc.args, &out, &errOut)
			if code != 2 || !strings.Contains(errOut.String(), tc.stderr) || out.Len() != 0 {
				t.Errorf("hostpass bench %q = %d\nstdout: %s\nstderr: %s\nwant 2, empty stdout, stderr with %q",
					tc.args, code, out.String(), errOut.String(), tc.stderr)
			}
		})
	}
}

func TestBenchBaselineNobodyAnswers(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	var out, errOut bytes.Buffer
	code := runCmd("bench", []string{"--socket", missing, "--baseline", "--noop", "in-process", "--duration", "50ms", "--rounds", "1"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "no hostpass daemon answers on "+missing) || strings.Contains(out.String(), "round 1") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s\nwant exit 1, no round line, and which socket did not answer", code, out.String(), errOut.String())
	}
}

// A dead --socket is found before the no-op side starts, not after it has
// run its --duration.
func TestBenchBaselineProbesBeforeTheNoopSide(t *testing.T) {
	defer func(orig func(string, string) (*exec.Cmd, error)) { noopCommand = orig }(noopCommand)
	started := false
	noopCommand = func(socket, fsyncDir string) (*exec.Cmd, error) {
		started = true
		return exec.Command("sleep", "60"), nil
	}
	missing := filepath.Join(t.TempDir(), "none.sock")
	var out, errOut bytes.Buffer
	code := runCmd("bench", []string{"--socket", missing, "--baseline", "--duration", "1m", "--rounds", "1"}, &out, &errOut)
	if code != 1 || started || out.Len() != 0 || !strings.Contains(errOut.String(), "no hostpass daemon answers on "+missing) {
		t.Errorf("exit %d, no-op child started %v\nstdout: %s\nstderr: %s\nwant exit 1 before any no-op side, and which socket did not answer", code, started, out.String(), errOut.String())
	}
}

// A no-op child that exits before serving is reported at once, with its
// own stderr on bench's, not after a 5 s wait for its socket.
func TestBenchBaselineChildExitsAtOnce(t *testing.T) {
	defer func(orig func(string, string) (*exec.Cmd, error)) { noopCommand = orig }(noopCommand)
	noopCommand = func(socket, fsyncDir string) (*exec.Cmd, error) {
		return exec.Command("sh", "-c", "echo 'serve-noop: address in use' >&2; exit 3"), nil
	}
	socket, _ := startDaemon(t, "")
	var out, errOut bytes.Buffer
	code := runCmd("bench", []string{"--socket", socket, "--baseline", "--duration", "50ms", "--rounds", "1"}, &out, &errOut)
	want := "serve-noop: address in use\nhostpass bench: starting the no-op driver: /usr/bin/sh exited before serving "
	if code != 1 || !strings.HasPrefix(errOut.String(), want) || !strings.HasSuffix(errOut.String(), "noop.sock: exit status 3\n") {
		t.Errorf("exit %d\nstderr: %q\nwant exit 1, stderr starting %q and ending with the exit status", code, errOut.String(), want)
	}
}

// TestNoopChildHelper is not a test: it is the child that
// TestBenchBaselineChild starts in place of `hostpass bench --serve-noop`.
func TestNoopChildHelper(t *testing.T) {
	socket := os.Getenv("HOSTPASS_TEST_NOOP_SOCKET")
	if socket == "" {
		t.Skip("only run as TestBenchBaselineChild's child")
	}
	args := []string{"--serve-noop", socket}
	if dir := os.Getenv("HOSTPASS_TEST_NOOP_FSYNC_DIR"); dir != "" {
		args = append(args, "--fsync-dir", dir)
	}
	os.Exit(runCmd("bench", args, os.Stdout, os.Stderr))
}

func TestBenchBaselineChild(t *testing.T) {
	var child *exec.Cmd
	defer func(orig func(string, string) (*exec.Cmd, error)) { noopCommand = orig }(noopCommand)
	noopCommand = func(socket, fsyncDir string) (*exec.Cmd, error) {
		child = exec.Command(os.Args[0], "-test.run=^TestNoopChildHelper$")
		child.Env = append(os.Environ(), "HOSTPASS_TEST_NOOP_SOCKET="+socket)
		return child, nil
	}
	socket, _ := startDaemon(t, "")
	var out, errOut bytes.Buffer
	code := runCmd("bench", []string{"--socket", socket, "--baseline", "--clients", "2", "--duration", "100ms", "--rounds", "1"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	if !strings.HasPrefix(out.String(), "op=join clients=2: 1 rounds, each side 100ms, no-op driver (child) first\nround 1: no-op ") {
		t.Errorf("stdout:\n%s", out.String())
	}
	if child == nil || child.ProcessState == nil || !child.ProcessState.Exited() || child.ProcessState.ExitCode() != 0 {
		t.Errorf("the no-op child was not run, or not stopped cleanly: %v", child)
	}
}

// TestBenchBaselineFloorChild runs the floor driver as a child, as the
// default --noop child does: it appends to and fsyncs a file in --fsync-dir
// per CreateEndpoint and Join, and removes it when stopped.
func TestBenchBaselineFloorChild(t *testing.T) {
	var children []*exec.Cmd
	defer func(orig func(string, string) (*exec.Cmd, error)) { noopCommand = orig }(noopCommand)
	noopCommand = func(socket, fsyncDir string) (*exec.Cmd, error) {
		child := exec.Command(os.Args[0], "-test.run=^TestNoopChildHelper$")
		child.Env = append(os.Environ(), "HOSTPASS_TEST_NOOP_SOCKET="+socket, "HOSTPASS_TEST_NOOP_FSYNC_DIR="+fsyncDir)
		children = append(children, child)
		return child, nil
	}
	socket, _ := startDaemon(t, "")
	fsyncDir := t.TempDir()
	var out, errOut bytes.Buffer
	code := runCmd("bench", []string{"--socket", socket, "--baseline", "--op", "container", "--clients", "2", "--duration", "100ms", "--rounds", "1", "--fsync-dir", fsyncDir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "  hostpass/floor ") || !strings.Contains(out.String(), "\nfloor driver at 2 clients: ") {
		t.Errorf("stdout lacks the floor driver:\n%s", out.String())
	}
	if len(children) != 2 {
		t.Fatalf("started %d children, want 2: the no-op driver and the floor driver", len(children))
	}
	for _, c := range children {
		if c.ProcessState == nil || c.ProcessState.ExitCode() != 0 {
			t.Errorf("child %v not stopped cleanly: %v", c.Env[len(c.Env)-2:], c.ProcessState)
		}
	}
	if ents, _ := os.ReadDir(fsyncDir); len(ents) != 0 {
		t.Errorf("the floor driver left %d files in %s", len(ents), fsyncDir)
	}
}

// Bench killed with SIGKILL takes its no-op child with it (Pdeathsig): a
// helper process runs bench --baseline, the test kills it once the no-op
// driver's socket is there, and the child, on SIGTERM, removes its socket.
func TestBenchKilledTakesItsNoopChild(t *testing.T) {
	socket, _ := startDaemon(t, "")
	tmp := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestBenchKilledHelper$")
	helper.Env = append(os.Environ(), "HOSTPASS_TEST_BENCH_KILLED="+socket, "TMPDIR="+tmp)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	var noop string
	for range 200 {
		if m, _ := filepath.Glob(filepath.Join(tmp, "hostpass-bench-*", "noop.sock")); len(m) == 1 {
			noop = m[0]
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if noop == "" {
		t.Fatal("bench's no-op child never served its socket")
	}
	t.Cleanup(func() { killByEnv(t, "HOSTPASS_TEST_NOOP_SOCKET="+noop) })
	helper.Process.Kill()
	helper.Wait()
	for range 200 {
		if _, err := os.Stat(noop); errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("bench was killed, and its no-op child still serves %s 10 s later", noop)
}

// TestBenchKilledHelper is the bench the test above kills.
func TestBenchKilledHelper(t *testing.T) {
	socket := os.Getenv("HOSTPASS_TEST_BENCH_KILLED")
	if socket == "" {
		t.Skip("the helper of TestBenchKilledTakesItsNoopChild")
	}
	noopCommand = func(noop, _ string) (*exec.Cmd, error) {
		child := exec.Command(os.Args[0], "-test.run=^TestNoopChildHelper$")
		child.Env = append(os.Environ(), "HOSTPASS_TEST_NOOP_SOCKET="+noop)
		return child, nil
	}
	os.Exit(runCmd("bench", []string{"--socket", socket, "--baseline", "--duration", "1m", "--rounds", "1"}, io.Discard, os.Stderr))
}

// killByEnv kills, by pid, a process of this test left running: the one
// whose environment holds kv.
func killByEnv(t *testing.T, kv string) {
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range envs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte("\x00"+kv+"\x00")) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(f, "/proc/%d/environ", &pid); err == nil {
			t.Logf("killing pid %d, the no-op child, in case it still runs", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

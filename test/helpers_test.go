//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	busyboxPath  = "/bin/busybox"
	image        = "hp-busybox:e2e"
	pluginDir    = "/run/docker/plugins"
	pluginReady  = 15 * time.Second
	pluginStop   = 15 * time.Second
	recordsReady = 30 * time.Second // a watcher in backoff after a dockerd restart may take a while
)

// loadBusybox imports a one-binary busybox image into the engine.
func (e *engine) loadBusybox(t testing.TB) {
	t.Helper()
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatalf("read busybox: %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(h *tar.Header) {
		h.ModTime = time.Now()
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	hdr(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	hdr(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777})
	hdr(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))})
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "ip", "sleep", "cat", "ls", "true", "false", "echo", "wget", "hostname"} {
		hdr(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker", "--host", e.host, "import", "-", image)
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
}

// interfaces runs a container on network and returns the names of the
// interfaces it sees, sorted.
func (e *engine) interfaces(t testing.TB, network string) []string {
	t.Helper()
	out := e.docker(t, "run", "--rm", "--network", network, image, "cat", "/proc/net/dev")
	var names []string
	for _, line := range strings.Split(out, "\n") {
		name, _, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(name, "|") {
			continue
		}
		names = append(names, strings.TrimSpace(name))
	}
	sort.Strings(names)
	return names
}

// networkID is the ID Docker gave a network.
func (e *engine) networkID(t testing.TB, network string) string {
	t.Helper()
	return e.docker(t, "network", "inspect", "-f", "{{.Id}}", network)
}

// legacyPlugin is bin/hostpass serving a socket in /run/docker/plugins, run
// in the engine's network namespace so that "the host" it sees is the
// engine's.
type legacyPlugin struct {
	e      *engine
	name   string // driver name: the socket's file name without .sock
	sock   string
	audit  string // audit log path
	state  string // state dir
	logDir string
	env    []string // extra environment for hostpass
	args   []string // replaces the serve flags when set
	// watch turns the watcher on, on the engine's socket. Off by default,
	// so that tests of the driver count its records exactly.
	watch bool
	extra []string // more serve flags

	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error // set when done is closed
	starts  int
}

// newLegacyPlugin prepares a legacy plugin with a unique driver name and its
// own audit log and state dir under the engine's DIR. It does not start it.
func newLegacyPlugin(t testing.TB, e *engine) *legacyPlugin {
	t.Helper()
	name := "hp-" + randHex(t, 5)
	p := &legacyPlugin{
		e:      e,
		name:   name,
		sock:   filepath.Join(pluginDir, name+".sock"),
		audit:  filepath.Join(e.mkdir(t, name+"/audit"), "audit.jsonl"),
		state:  e.mkdir(t, name+"/state"),
		logDir: e.dir,
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			p.terminate()
		}
		if err := os.Remove(p.sock); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove %s: %v", p.sock, err)
		}
		if t.Failed() {
			t.Logf("hostpass log (tail):\n%s", tail(p.logPath(), 40))
		}
	})
	return p
}

func (p *legacyPlugin) logPath() string { return filepath.Join(p.logDir, "hostpass-"+p.name+".log") }

// start runs `hostpass serve` and waits until its socket accepts connections.
func (p *legacyPlugin) start(t testing.TB) {
	t.Helper()
	if p.cmd != nil {
		t.Fatalf("plugin %s already running", p.name)
	}
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := p.args
	if args == nil {
		args = []string{"serve",
			"--socket", p.sock,
			"--audit-log", p.audit,
			"--state-dir", p.state,
			"--log-level", "debug"}
		if p.watch {
			args = append(args, "--docker-socket", p.e.sock)
		} else {
			args = append(args, "--watch=false")
		}
		args = append(args, p.extra...)
	}
	cmd := p.e.nsenter(hostpassBin(t), args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hostpass: %v", err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	p.starts++
	go func(done chan struct{}) { p.exitErr = cmd.Wait(); close(done) }(p.done)

	deadline := time.Now().Add(pluginReady)
	for {
		select {
		case <-p.done:
			p.cmd = nil
			t.Fatalf("hostpass serve exited during start-up (%v); log:\n%s", p.exitErr, tail(p.logPath(), 30))
		default:
		}
		if c, err := net.Dial("unix", p.sock); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hostpass socket %s not listening after %s; log:\n%s", p.sock, pluginReady, tail(p.logPath(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// terminate sends SIGTERM and waits; past pluginStop it kills the daemon.
// It reports whether the daemon exited by itself.
func (p *legacyPlugin) terminate() bool {
	defer func() { p.cmd = nil }()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(pluginStop):
		_ = p.cmd.Process.Kill()
		<-p.done
		return false
	}
}

// stop sends SIGTERM and checks the contract: exit status 0, socket removed.
func (p *legacyPlugin) stop(t testing.TB) {
	t.Helper()
	if p.cmd == nil {
		t.Fatalf("plugin %s not running", p.name)
	}
	if !p.terminate() {
		t.Fatalf("hostpass did not exit within %s of SIGTERM", pluginStop)
	}
	if p.exitErr != nil {
		t.Errorf("hostpass exit after SIGTERM: %v, want status 0; log:\n%s", p.exitErr, tail(p.logPath(), 20))
	}
	if _, err := os.Stat(p.sock); !os.IsNotExist(err) {
		t.Errorf("socket %s still present after SIGTERM (stat: %v)", p.sock, err)
	}
}

// hostInterface is one element of a join record's host_interfaces.
type hostInterface struct {
	Name  string          `json:"name"`
	Index int             `json:"index"`
	MAC   string          `json:"mac"`
	MTU   int             `json:"mtu"`
	Up    bool            `json:"up"`
	Addrs json.RawMessage `json:"addrs"`
}

// record is one audit log line.
type record struct {
	Time           string          `json:"time"`
	Seq            int64           `json:"seq"`
	Event          string          `json:"event"`
	Outcome        string          `json:"outcome"`
	Error          string          `json:"error"`
	NetworkID      string          `json:"network_id"`
	EndpointID     string          `json:"endpoint_id"`
	SandboxKey     string          `json:"sandbox_key"`
	Tag            string          `json:"tag"`
	Options        map[string]any  `json:"options"`
	Internal       bool            `json:"internal"`
	IPAMPools      []string        `json:"ipam_pools"`
	Host           string          `json:"host"`
	HostInterfaces []hostInterface `json:"host_interfaces"`
	Adopted        bool            `json:"adopted"`
	Driver         string          `json:"driver"`
	// From the watcher.
	Container *struct {
		ID         string            `json:"id"`
		Name       string            `json:"name"`
		Image      string            `json:"image"`
		ImageID    string            `json:"image_id"`
		Labels     map[string]string `json:"labels"`
		Privileged bool              `json:"privileged"`
		CapAdd     []string          `json:"cap_add"`
		Ports      []string          `json:"published_ports"`
		StartedAt  string            `json:"started_at"`
	} `json:"container"`
	NetworkName     string            `json:"network_name"`
	NetworkLabels   map[string]string `json:"network_labels"`
	ObservedLate    bool              `json:"observed_late"`
	HostModeSeconds *float64          `json:"host_mode_seconds"`
	Policy          string            `json:"policy"`
	Action          string            `json:"action"`
	Detail          string            `json:"detail"`
	// Schema 2: the host view a join saw, the host.view record's links
	// beyond its bound, and the fields the log cut to its bound.
	HostView          string          `json:"host_view"`
	OmittedInterfaces int             `json:"omitted_interfaces"`
	BaseView          string          `json:"base_view"`
	ChangedInterfaces []hostInterface `json:"changed_interfaces"`
	RemovedInterfaces []int           `json:"removed_interfaces"`
	Truncated         []string        `json:"truncated"`

	line  string // as written, for failure messages
	views int    // host.view records right before this one, which readAudit leaves out
}

// readAudit parses an audit log, every line a JSON record, and returns the
// records but host.view: a record that names a view gets its links in
// HostInterfaces, as `audit show --json --interfaces` prints it.
func readAudit(t testing.TB, path string) []record {
	t.Helper()
	var out []record
	views, skipped := map[string][]hostInterface{}, 0
	for _, r := range readAuditAll(t, path) {
		if r.Event == "host.view" {
			// In full, or the change from the view named in base_view.
			links := map[int]hostInterface{}
			for _, l := range views[r.BaseView] {
				links[l.Index] = l
			}
			for _, l := range append(r.HostInterfaces, r.ChangedInterfaces...) {
				links[l.Index] = l
			}
			for _, i := range r.RemovedInterfaces {
				delete(links, i)
			}
			var view []hostInterface
			for _, l := range links {
				view = append(view, l)
			}
			sort.Slice(view, func(i, j int) bool { return view[i].Index < view[j].Index })
			views[r.HostView] = view
			skipped++
			continue
		}
		if r.HostView != "" {
			r.HostInterfaces = views[r.HostView]
		}
		r.views, skipped = skipped, 0
		out = append(out, r)
	}
	return out
}

// readAuditAll parses an audit log; every line must be a JSON record.
func readAuditAll(t testing.TB, path string) []record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatalf("read audit log: %v", err)
	}
	var recs []record
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit log %s line %d is not a JSON record: %v\n%s", path, i+1, err, line)
		}
		r.line = line
		recs = append(recs, r)
	}
	return recs
}

// waitAudit polls the audit log until ok accepts its records.
func waitAudit(t testing.TB, path string, what string, ok func([]record) bool) []record {
	t.Helper()
	deadline := time.Now().Add(recordsReady)
	for {
		recs := readAudit(t, path)
		if ok(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit log %s: %s not seen within %s; log:\n%s", path, what, recordsReady, dumpRecords(recs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCount waits until the audit log holds at least n records.
func waitCount(t testing.TB, path string, n int) []record {
	t.Helper()
	return waitAudit(t, path, "record count", func(r []record) bool { return len(r) >= n })
}

func dumpRecords(recs []record) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.line)
		b.WriteByte('\n')
	}
	return b.String()
}

// checkSeq asserts seq runs 1, 2, 3, ... over the whole log: no gap, no repeat.
func checkSeq(t testing.TB, recs []record) {
	t.Helper()
	want := int64(1)
	for i, r := range recs {
		want += int64(r.views) // the host.view records readAudit left out
		if r.Seq != want {
			t.Errorf("record %d has seq %d, want %d (seq must run 1, 2, 3 ... without gaps):\n%s", i+1, r.Seq, want, dumpRecords(recs))
			return
		}
		want++
	}
}

// checkTime asserts the time field is RFC3339Nano in UTC and recent.
func checkTime(t testing.TB, r record) {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		t.Errorf("seq %d: time %q does not parse as RFC3339Nano: %v", r.Seq, r.Time, err)
		return
	}
	if !strings.HasSuffix(r.Time, "Z") {
		t.Errorf("seq %d: time %q is not UTC", r.Seq, r.Time)
	}
	if d := time.Since(ts); d < -time.Minute || d > time.Hour {
		t.Errorf("seq %d: time %s is %s away from now", r.Seq, r.Time, d)
	}
}

// filter returns the records for which keep is true.
func filter(recs []record, keep func(record) bool) []record {
	var out []record
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func byEvent(event, outcome string) func(record) bool {
	return func(r record) bool { return r.Event == event && r.Outcome == outcome }
}

func last(t testing.TB, recs []record) record {
	t.Helper()
	if len(recs) == 0 {
		t.Fatalf("audit log is empty")
	}
	return recs[len(recs)-1]
}

func hasInterface(ifs []hostInterface, name string) bool {
	for _, i := range ifs {
		if i.Name == name {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// checkRun asserts the records of one `docker run --rm` on a network:
// endpoint.create, endpoint.join, endpoint.leave, endpoint.delete, in that
// order, all ok, one endpoint, the network's ID, the network's tag, and the
// join's adopted flag as given.
func checkRun(t testing.TB, recs []record, networkID, tag string, adopted bool) {
	t.Helper()
	want := []string{"endpoint.create", "endpoint.join", "endpoint.leave", "endpoint.delete"}
	if len(recs) != len(want) {
		t.Fatalf("a docker run --rm wrote %d records, want %d (%v):\n%s", len(recs), len(want), want, dumpRecords(recs))
	}
	for i, r := range recs {
		if r.Event != want[i] || r.Outcome != "ok" {
			t.Errorf("record %d: event %q outcome %q, want %q ok", i+1, r.Event, r.Outcome, want[i])
		}
		if r.NetworkID != networkID {
			t.Errorf("%s: network_id %q, want %q", r.Event, r.NetworkID, networkID)
		}
		if r.EndpointID == "" || r.EndpointID != recs[0].EndpointID {
			t.Errorf("%s: endpoint_id %q, want %q (the same on all four records)", r.Event, r.EndpointID, recs[0].EndpointID)
		}
		if r.Tag != tag {
			t.Errorf("%s: tag %q, want %q", r.Event, r.Tag, tag)
		}
		checkTime(t, r)
	}
	join := recs[1]
	if join.SandboxKey == "" {
		t.Errorf("endpoint.join has no sandbox_key:\n%s", join.line)
	}
	if !hasInterface(join.HostInterfaces, "lo") {
		t.Errorf("endpoint.join host_interfaces lack lo:\n%s", join.line)
	}
	if join.Adopted != adopted {
		t.Errorf("endpoint.join adopted=%v, want %v:\n%s", join.Adopted, adopted, join.line)
	}
}

//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	engineReadyTimeout = 60 * time.Second
	engineStopTimeout  = 30 * time.Second
	commandTimeout     = 3 * time.Minute

	busyboxPath = "/bin/busybox"
	image       = "hp-busybox:e2e"
)

// engine is a dockerd of its own, running in a network namespace of its own.
// Paths stay short: unix socket paths must fit in 108 bytes.
type engine struct {
	dir  string // DIR: data, exec root, socket, logs and the test's scratch files
	ns   string // network namespace name, /run/netns/<ns>
	uts  string // DIR/uts: the engine's own UTS namespace, if it has a host name of its own
	sock string // DIR/d.sock
	host string // unix://DIR/d.sock, for --host and DOCKER_HOST

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited

	version engineVersion // what the engine said at its first start
}

// The engine under test. By default the machine's dockerd (Debian's 20.10)
// with its own runc; `make e2e-29` names the Docker Engine 29 that
// scripts/engines.sh built, and the runc and docker-proxy beside it.
const (
	envDockerd = "HOSTPASS_E2E_DOCKERD"
	envRunc    = "HOSTPASS_E2E_RUNC"
)

// dockerdPath is the dockerd the suite starts.
func dockerdPath() string {
	if p := os.Getenv(envDockerd); p != "" {
		return p
	}
	return "dockerd"
}

// dockerdArgs are the flags beyond data root, exec root, socket and pidfile:
// with HOSTPASS_E2E_RUNC, that runc as the default runtime (Debian's runc
// 1.1 cannot start Engine 29's containers: "namespace {time} does not
// exist"), and with HOSTPASS_E2E_DOCKERD, the docker-proxy built beside
// it (Debian's 20.10 one does not know the flags a 29 dockerd passes).
func dockerdArgs() []string {
	var args []string
	if runc := os.Getenv(envRunc); runc != "" {
		args = append(args, "--add-runtime", "e2e-runc="+runc, "--default-runtime", "e2e-runc")
	}
	if d := os.Getenv(envDockerd); d != "" {
		if proxy := filepath.Join(filepath.Dir(d), "docker-proxy"); fileExists(proxy) {
			args = append(args, "--userland-proxy-path", proxy)
		}
	}
	return args
}

// runcPath is the runc the engine starts containers with.
func runcPath() string {
	if p := os.Getenv(envRunc); p != "" {
		return p
	}
	return "runc"
}

// engineVersion is what GET /version says, the engine's version and the
// newest Engine API version it speaks, and the version its runc reports.
type engineVersion struct {
	Version    string
	APIVersion string `json:"ApiVersion"`
	Runc       string `json:"-"` // as runc --version says it, e.g. 1.1.5+ds1
}

func (v engineVersion) String() string {
	return "dockerd " + v.Version + " (Engine API " + v.APIVersion + "), runc " + v.Runc
}

// runcAtLeast reports whether the engine's runc is major.minor.patch or
// newer; a version it cannot read fails the test.
func (v engineVersion) runcAtLeast(t testing.TB, major, minor, patch int) bool {
	t.Helper()
	var got [3]int
	if _, err := fmt.Sscanf(v.Runc, "%d.%d.%d", &got[0], &got[1], &got[2]); err != nil {
		t.Fatalf("runc version %q: %v", v.Runc, err)
	}
	want := [3]int{major, minor, patch}
	for i := range got {
		if got[i] != want[i] {
			return got[i] > want[i]
		}
	}
	return true
}

// apiAtLeast reports whether the engine speaks Engine API 1.minor or newer.
// The API version, not the version, tells engines apart: the Engine 29 of
// `make e2e-29` is built from a module (its version is the module's,
// v2.0.0-beta.N), and every release raises the API version (20.10: 1.41,
// 28.0: 1.48, 29.0: 1.52).
func (v engineVersion) apiAtLeast(t testing.TB, minor int) bool {
	t.Helper()
	var major, m int
	if _, err := fmt.Sscanf(v.APIVersion, "%d.%d", &major, &m); err != nil {
		t.Fatalf("engine API version %q: %v", v.APIVersion, err)
	}
	return major > 1 || major == 1 && m >= minor
}

// TestMain names the engine and runtime once, at the top of the output.
func TestMain(m *testing.M) {
	fmt.Printf("e2e: engine %s\n", firstLine(dockerdPath(), "--version"))
	fmt.Printf("e2e: runtime %s\n", firstLine(runcPath(), "--version"))
	os.Exit(m.Run())
}

// firstLine is the first line a command prints, or what went wrong.
func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		return fmt.Sprintf("%s: %v %s", name, err, line)
	}
	return line + " (" + name + ")"
}

// newEngine creates a network namespace and starts a dockerd in it. Cleanup
// stops the daemon, unmounts whatever it left under DIR, deletes the namespace
// and removes DIR.
func newEngine(t testing.TB) *engine {
	t.Helper()
	return newEngineNamed(t, "")
}

// newEngineNamed is newEngine; with a hostname, dockerd (and containerd,
// and the plugins it starts) runs in a UTS namespace of its own that has
// that host name, as every host of a fleet has its own: hostpass names its
// host by it (a record's host, a syslog message's HOSTNAME), and swarm its
// node. The namespace is kept in DIR/uts, so that a restart keeps it.
func newEngineNamed(t testing.TB, hostname string) *engine {
	t.Helper()
	requirePrereqs(t)
	dir, err := os.MkdirTemp("/tmp", "hp")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	e := &engine{dir: dir, ns: "hp-e2e-" + randHex(t, 4)}
	e.sock = filepath.Join(dir, "d.sock")
	e.host = "unix://" + e.sock
	run(t, "ip", "netns", "add", e.ns)
	t.Cleanup(func() {
		e.stop(t)
		unmountUnder(t, dir)
		if out, err := exec.Command("ip", "netns", "del", e.ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", e.ns, err, out)
		}
		if t.Failed() {
			t.Logf("dockerd log (tail):\n%s", tail(filepath.Join(dir, "dockerd.log"), 40))
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	run(t, "ip", "-n", e.ns, "link", "set", "lo", "up")
	if hostname != "" {
		e.uts = filepath.Join(dir, "uts")
		if err := os.WriteFile(e.uts, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// unshare binds the new namespace on DIR/uts; Cleanup's
		// unmountUnder detaches it.
		run(t, "unshare", "--uts="+e.uts, busyboxPath, "hostname", hostname)
	}
	e.start(t)
	return e
}

// nsenter returns a command that runs name in the engine's network namespace.
// nsenter execs the program, so the command's pid is the program's pid.
// With a host name of its own, the command runs in the engine's UTS
// namespace too.
func (e *engine) nsenter(name string, args ...string) *exec.Cmd {
	ns := []string{"--net=/run/netns/" + e.ns}
	if e.uts != "" {
		ns = append(ns, "--uts="+e.uts)
	}
	return exec.Command("nsenter", append(append(ns, name), args...)...)
}

// start starts dockerd on the engine's data root and waits until it answers.
func (e *engine) start(t testing.TB) {
	t.Helper()
	if e.cmd != nil {
		t.Fatalf("dockerd already running (pid %d)", e.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(filepath.Join(e.dir, "dockerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("dockerd log: %v", err)
	}
	defer logf.Close()
	cmd := e.nsenter(dockerdPath(), append([]string{
		"--data-root", filepath.Join(e.dir, "data"),
		"--exec-root", filepath.Join(e.dir, "x"),
		"-H", e.host,
		"--pidfile", filepath.Join(e.dir, "d.pid")}, dockerdArgs()...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	e.cmd, e.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(e.done)

	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", e.sock)
		},
	}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(engineReadyTimeout)
	for {
		select {
		case <-e.done:
			e.cmd = nil
			t.Fatalf("dockerd exited during start-up; log:\n%s", tail(filepath.Join(e.dir, "dockerd.log"), 30))
		default:
		}
		if resp, err := client.Get("http://docker/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				e.readVersion(t, &client)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd not ready after %s; log:\n%s", engineReadyTimeout, tail(filepath.Join(e.dir, "dockerd.log"), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readVersion asks the engine its version at its first start and names it
// in the test's log, so that every test's output says which engine ran it.
func (e *engine) readVersion(t testing.TB, client *http.Client) {
	t.Helper()
	if e.version.APIVersion != "" {
		return
	}
	resp, err := client.Get("http://docker/version")
	if err != nil {
		t.Fatalf("engine version: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&e.version); err != nil || e.version.APIVersion == "" {
		t.Fatalf("engine version: %v (API version %q)", err, e.version.APIVersion)
	}
	// Not the engine's report of it: 20.10 says "unknown" for a runc
	// built with go install.
	out, err := exec.Command(runcPath(), "--version").Output()
	if _, err2 := fmt.Sscanf(string(out), "runc version %s", &e.version.Runc); err != nil || err2 != nil {
		t.Fatalf("%s --version: %v %v: %s", runcPath(), err, err2, out)
	}
	t.Logf("engine: %s", e.version)
}

// stop sends dockerd SIGTERM and waits; SIGKILL (dockerd and its containerd)
// if it does not exit in time. A no-op when it is not running.
func (e *engine) stop(t testing.TB) {
	t.Helper()
	if e.cmd == nil {
		return
	}
	if stopProcess(t, "dockerd", e.cmd, e.done, engineStopTimeout) {
		if b, err := os.ReadFile(filepath.Join(e.dir, "x", "containerd", "containerd.pid")); err == nil {
			if cpid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(cpid, syscall.SIGKILL)
			}
		}
	}
	e.cmd = nil
	e.removePluginRunDirs()
}

// removePluginRunDirs removes /run/docker/plugins/ID of this engine's
// managed plugins: dockerd makes it there for a plugin's socket and stdio
// whatever its --exec-root, and leaves it behind when it stops. The next
// start makes it again.
func (e *engine) removePluginRunDirs() {
	entries, _ := os.ReadDir(filepath.Join(e.dir, "data", "plugins"))
	for _, entry := range entries {
		if id := entry.Name(); len(id) == 64 && strings.Trim(id, "0123456789abcdef") == "" {
			_ = os.RemoveAll(filepath.Join("/run/docker/plugins", id))
		}
	}
}

// stopProcess sends cmd SIGTERM and waits until done is closed; past grace
// it reports that, kills cmd and waits. It tells whether it had to kill.
func stopProcess(t testing.TB, name string, cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) (killed bool) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return false
	case <-time.After(grace):
		t.Errorf("%s (pid %d) ignored SIGTERM for %s; killing it", name, cmd.Process.Pid, grace)
		_ = cmd.Process.Kill()
		<-done
		return true
	}
}

// docker runs the docker CLI against the engine and fails the test on error.
func (e *engine) docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := e.dockerTry(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// dockerTry runs the docker CLI against the engine and returns its combined,
// trimmed output.
func (e *engine) dockerTry(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--host", e.host}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// make runs a Makefile target of the repository against the engine.
func (e *engine) make(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"-C", repoRoot(t)}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mkdir makes a directory under the engine's DIR and returns its path.
func (e *engine) mkdir(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	return p
}

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

// api posts a JSON body to the engine's API and returns the status, and the
// reply's message if it has one, else the reply.
func (e *engine) api(t testing.TB, path string, body []byte) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.sock)
	}}}
	resp, err := c.Post("http://docker"+path, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	var m struct{ Message string }
	if json.Unmarshal(reply, &m) == nil && m.Message != "" {
		return resp.StatusCode, m.Message
	}
	return resp.StatusCode, string(reply)
}

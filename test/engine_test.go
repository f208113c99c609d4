//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
)

// engine is a dockerd of its own, running in a network namespace of its own.
// Paths stay short: unix socket paths must fit in 108 bytes.
type engine struct {
	dir  string // DIR: data, exec root, socket, logs and the test's scratch files
	ns   string // network namespace name, /run/netns/<ns>
	sock string // DIR/d.sock
	host string // unix://DIR/d.sock, for --host and DOCKER_HOST

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// newEngine creates a network namespace and starts a dockerd in it. Cleanup
// stops the daemon, unmounts whatever it left under DIR, deletes the namespace
// and removes DIR.
func newEngine(t testing.TB) *engine {
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
	e.start(t)
	return e
}

// nsenter returns a command that runs name in the engine's network namespace.
// nsenter execs the program, so the command's pid is the program's pid.
func (e *engine) nsenter(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + e.ns, name}, args...)...)
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
	cmd := e.nsenter("dockerd",
		"--data-root", filepath.Join(e.dir, "data"),
		"--exec-root", filepath.Join(e.dir, "x"),
		"-H", e.host,
		"--pidfile", filepath.Join(e.dir, "d.pid"))
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
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd not ready after %s; log:\n%s", engineReadyTimeout, tail(filepath.Join(e.dir, "dockerd.log"), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends dockerd SIGTERM and waits; SIGKILL (dockerd and its containerd)
// if it does not exit in time. A no-op when it is not running.
func (e *engine) stop(t testing.TB) {
	t.Helper()
	if e.cmd == nil {
		return
	}
	pid := e.cmd.Process.Pid
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(engineStopTimeout):
		t.Errorf("dockerd (pid %d) ignored SIGTERM for %s; killing it", pid, engineStopTimeout)
		_ = e.cmd.Process.Kill()
		<-e.done
		if b, err := os.ReadFile(filepath.Join(e.dir, "x", "containerd", "containerd.pid")); err == nil {
			if cpid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(cpid, syscall.SIGKILL)
			}
		}
	}
	e.cmd = nil
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

// requirePrereqs fails (never skips) the test when the machine cannot run it.
func requirePrereqs(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the e2e suite needs root (network namespaces, dockerd, mounts)")
	}
	for _, tool := range []string{"dockerd", "docker", "ip", "nsenter", "mount", "umount", "make", "docker-registry"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found on PATH: install docker.io, docker-registry, iproute2, make (see .ci/run)", tool)
		}
	}
	if _, err := os.Stat(busyboxPath); err != nil {
		t.Fatalf("%s: %v: install busybox-static", busyboxPath, err)
	}
	hostpassBin(t)
}

// repoRoot is the repository's top folder; go test runs in test/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

// hostpassBin is the binary under test, built by `make build`.
func hostpassBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "bin", "hostpass")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v: run the suite with `make e2e`, which builds it", p, err)
	}
	return p
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(t testing.TB, dir string) {
	t.Helper()
	for _, m := range mountsUnder(t, dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("mountinfo: %v", err)
	}
	defer f.Close()
	var found []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountinfo(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			found = append(found, p)
		}
	}
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	return found
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

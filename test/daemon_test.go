//go:build e2e

package e2e

import (
	"context"
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
)

const (
	pluginDir   = "/run/docker/plugins"
	pluginReady = 15 * time.Second
	pluginStop  = 15 * time.Second
)

// daemon is one `bin/hostpass serve` process, stopped by its pid: either
// alone on a private socket (newDaemon, startDaemon: no dockerd involved),
// or a legacy plugin serving a socket in /run/docker/plugins, run in an
// engine's network namespace so that "the host" it sees is the engine's
// (newLegacyPlugin). Fields may be changed between stop and start.
type daemon struct {
	e     *engine // the engine it serves, or nil when alone
	name  string  // driver name: the socket's file name without .sock
	sock  string
	audit string // audit log path
	state string // state dir

	// logPath receives its stdout and stderr, unless output is set: then
	// they go there (a FIFO, say), and the caller closes output.
	logPath string
	output  *os.File

	env   []string // extra environment for hostpass
	args  []string // replaces the serve flags when set
	extra []string // more serve flags
	// watch turns the watcher on, on the engine's socket. Off by default,
	// so that tests of the driver count its records exactly.
	watch bool

	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error // set when done is closed
}

// newDaemon prepares a daemon alone, with its socket, audit log (log/),
// state dir and output in dir. It does not start it.
func newDaemon(t testing.TB, dir string) *daemon {
	t.Helper()
	d := &daemon{
		name:    "hp",
		sock:    filepath.Join(dir, "hp.sock"),
		audit:   filepath.Join(dir, "log", "audit.jsonl"),
		state:   filepath.Join(dir, "state"),
		logPath: filepath.Join(dir, "hostpass.log"),
	}
	d.cleanup(t)
	return d
}

// startDaemon starts a daemon alone in dir, with serve's defaults and extra.
func startDaemon(t testing.TB, dir string, extra ...string) *daemon {
	t.Helper()
	d := newDaemon(t, dir)
	d.extra = extra
	d.start(t)
	return d
}

// newLegacyPlugin prepares a legacy plugin with a unique driver name and its
// own audit log and state dir under the engine's DIR. It does not start it.
func newLegacyPlugin(t testing.TB, e *engine) *daemon {
	t.Helper()
	name := "hp-" + randHex(t, 5)
	d := &daemon{
		e:       e,
		name:    name,
		sock:    filepath.Join(pluginDir, name+".sock"),
		audit:   filepath.Join(e.mkdir(t, name+"/audit"), "audit.jsonl"),
		state:   e.mkdir(t, name+"/state"),
		logPath: filepath.Join(e.dir, "hostpass-"+name+".log"),
	}
	d.cleanup(t)
	return d
}

// cleanup stops the daemon if it runs, removes its socket (on an engine it
// sits in /run/docker/plugins, which every dockerd scans) and, when the test
// failed, logs the tail of its output.
func (d *daemon) cleanup(t testing.TB) {
	t.Cleanup(func() {
		if d.cmd != nil {
			d.terminate()
		}
		if err := os.Remove(d.sock); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove %s: %v", d.sock, err)
		}
		if t.Failed() && d.output == nil {
			t.Logf("hostpass log (tail):\n%s", tail(d.logPath, 40))
		}
	})
}

// serveArgs are the flags of `hostpass serve`: socket, audit log and state
// dir, then extra. On an engine it logs at debug and watches that engine
// only when watch is set; alone it keeps serve's defaults.
func (d *daemon) serveArgs() []string {
	if d.args != nil {
		return d.args
	}
	args := []string{"serve", "--socket", d.sock, "--audit-log", d.audit, "--state-dir", d.state}
	if d.e != nil {
		args = append(args, "--log-level", "debug")
		if d.watch {
			args = append(args, "--docker-socket", d.e.sock)
		} else {
			args = append(args, "--watch=false")
		}
	}
	return append(args, d.extra...)
}

// start runs `hostpass serve` and waits until its socket accepts connections.
func (d *daemon) start(t testing.TB) {
	t.Helper()
	if d.cmd != nil {
		t.Fatalf("hostpass %s already running (pid %d)", d.name, d.pid())
	}
	if err := os.MkdirAll(filepath.Dir(d.sock), 0o755); err != nil {
		t.Fatal(err)
	}
	out := d.output
	if out == nil {
		logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		out = logf
	}
	var cmd *exec.Cmd
	if d.e != nil {
		cmd = d.e.nsenter(hostpassBin(t), d.serveArgs()...)
	} else {
		cmd = exec.Command(hostpassBin(t), d.serveArgs()...)
	}
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hostpass: %v", err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func(done chan struct{}) { d.exitErr = cmd.Wait(); close(done) }(d.done)

	deadline := time.Now().Add(pluginReady)
	for {
		select {
		case <-d.done:
			d.cmd = nil
			t.Fatalf("hostpass serve exited during start-up (%v); log:\n%s", d.exitErr, tail(d.logPath, 30))
		default:
		}
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hostpass socket %s not listening after %s; log:\n%s", d.sock, pluginReady, tail(d.logPath, 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pid is the running daemon's process ID.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// signal sends the running daemon sig (SIGHUP rotates its log).
func (d *daemon) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if d.cmd == nil {
		t.Fatalf("hostpass %s not running", d.name)
	}
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to hostpass: %v", sig, err)
	}
}

// terminate sends SIGTERM and waits; past pluginStop it kills the daemon.
// It reports whether the daemon exited by itself; its exit is in exitErr.
func (d *daemon) terminate() bool {
	defer func() { d.cmd = nil }()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return true
	case <-time.After(pluginStop):
		_ = d.cmd.Process.Kill()
		<-d.done
		return false
	}
}

// stop sends SIGTERM and checks the contract: exit status 0, socket removed.
func (d *daemon) stop(t testing.TB) {
	t.Helper()
	if d.cmd == nil {
		t.Fatalf("hostpass %s not running", d.name)
	}
	if !d.terminate() {
		t.Fatalf("hostpass did not exit within %s of SIGTERM", pluginStop)
	}
	if d.exitErr != nil {
		t.Errorf("hostpass exit after SIGTERM: %v, want status 0; log:\n%s", d.exitErr, tail(d.logPath, 20))
	}
	if _, err := os.Stat(d.sock); !os.IsNotExist(err) {
		t.Errorf("socket %s still present after SIGTERM (stat: %v)", d.sock, err)
	}
}

// kill9 kills the daemon as a crash would: no state saved on the way out.
func (d *daemon) kill9(t testing.TB) {
	t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done
	d.cmd = nil
}

// client is an HTTP client on the daemon's socket, as Docker's plugin
// client is.
func (d *daemon) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
		},
	}}
}

// post sends a NetworkDriver call with a JSON body and returns the status.
func (d *daemon) post(c *http.Client, method, body string) (int, error) {
	return d.postCtx(context.Background(), c, method, body)
}

// postCtx is post bounded by ctx.
func (d *daemon) postCtx(ctx context.Context, c *http.Client, method, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://hostpass/NetworkDriver."+method, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

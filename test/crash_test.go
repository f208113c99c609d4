//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemon is bin/hostpass serve on a private socket (not in
// /run/docker/plugins: no dockerd is involved), killed or stopped by the test.
type daemon struct {
	sock, auditLog, state string
	cmd                   *exec.Cmd
}

func startDaemon(t *testing.T, dir string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{sock: filepath.Join(dir, "hp.sock"), auditLog: filepath.Join(dir, "log", "audit.jsonl"), state: filepath.Join(dir, "state")}
	logf, err := os.OpenFile(filepath.Join(dir, "hostpass.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"serve", "--socket", d.sock, "--audit-log", d.auditLog, "--state-dir", d.state}, extra...)
	d.cmd = exec.Command(hostpassBin(t), args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	for deadline := time.Now().Add(pluginReady); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("hostpass not listening on %s; log:\n%s", d.sock, tail(filepath.Join(dir, "hostpass.log"), 20))
		}
	}
}

func (d *daemon) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
		},
	}}
}

func (d *daemon) post(c *http.Client, method, body string) (int, error) {
	resp, err := c.Post("http://hostpass/NetworkDriver."+method, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// verifyLog runs `hostpass audit verify` on the log and returns its output;
// it fails the test unless the log verifies.
func verifyLog(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(hostpassBin(t), append([]string{"audit", "verify"}, args...)...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok: ") {
		t.Fatalf("hostpass audit verify %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestCrashWhileJoining kills the daemon with SIGKILL while 16 clients join,
// restarts it on the same log, and checks that the log verifies and that
// every join that got "ok" has its record.
func TestCrashWhileJoining(t *testing.T) {
	requirePrereqs(t)
	dir := t.TempDir()
	d := startDaemon(t, dir)
	if code, err := d.post(d.client(), "CreateNetwork", `{"NetworkID":"c7a5000000000000000000000000000000000000000000000000000000000000"}`); err != nil || code != 200 {
		t.Fatalf("CreateNetwork: %d %v", code, err)
	}

	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			client := d.client()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ep := fmt.Sprintf("ep-%02d-%06d", c, i)
				code, err := d.post(client, "Join", `{"NetworkID":"c7a5000000000000000000000000000000000000000000000000000000000000","EndpointID":"`+ep+`","SandboxKey":"/x"}`)
				if err != nil {
					return // the daemon is gone
				}
				if code == 200 {
					mu.Lock()
					acked = append(acked, ep)
					mu.Unlock()
				}
			}
		}(c)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d joins acknowledged before the kill; the test needs load", len(acked))
	}

	// Restart on the same log: the chain goes on, and one more join lands.
	os.Remove(d.sock) // what a killed daemon leaves behind is replaced anyway
	d = startDaemon(t, dir)
	if code, err := d.post(d.client(), "Join", `{"NetworkID":"c7a5000000000000000000000000000000000000000000000000000000000000","EndpointID":"after-restart"}`); err != nil || code != 200 {
		t.Fatalf("Join after restart: %d %v", code, err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()

	out := verifyLog(t, filepath.Dir(d.auditLog))
	recs := readAudit(t, d.auditLog)
	joined := map[string]bool{}
	for _, r := range filter(recs, byEvent("endpoint.join", "ok")) {
		joined[r.EndpointID] = true
	}
	for _, ep := range acked {
		if !joined[ep] {
			t.Errorf("join of %s got ok, but the log has no record of it", ep)
		}
	}
	if !joined["after-restart"] {
		t.Errorf("the join after the restart is not in the log")
	}
	t.Logf("%d joins acknowledged before SIGKILL, all on record; %s", len(acked), out)
}

// TestTornTailIsSetAside appends half a record, as a crash in the middle of a
// write would leave, and restarts the daemon: the partial line is moved to a
// side file, an audit.torn_tail record says so, and the log verifies.
func TestTornTailIsSetAside(t *testing.T) {
	requirePrereqs(t)
	dir := t.TempDir()
	d := startDaemon(t, dir)
	d.post(d.client(), "CreateNetwork", `{"NetworkID":"7047000000000000000000000000000000000000000000000000000000000000"}`)
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	torn := []byte(`{"time":"2026-11-28T00:00:00Z","seq":2,"event":"endpoint.jo`)
	f, _ := os.OpenFile(d.auditLog, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(torn)
	f.Close()

	out, err := exec.Command(hostpassBin(t), "audit", "verify", d.auditLog).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "truncated: the last line is incomplete") {
		t.Fatalf("verify of a torn log: %v\n%s\nwant exit 1 naming the truncation", err, out)
	}

	d = startDaemon(t, dir)
	if code, err := d.post(d.client(), "Join", `{"NetworkID":"7047000000000000000000000000000000000000000000000000000000000000","EndpointID":"e1"}`); err != nil || code != 200 {
		t.Fatalf("Join after restart: %d %v", code, err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()

	recs := readAudit(t, d.auditLog)
	if len(recs) != 3 || recs[1].Event != "audit.torn_tail" || recs[2].Event != "endpoint.join" {
		t.Fatalf("want network.create, audit.torn_tail, endpoint.join:\n%s", dumpRecords(recs))
	}
	saved, _ := filepath.Glob(d.auditLog + ".torn-*")
	if len(saved) != 1 {
		t.Fatalf("want one side file with the torn bytes, got %v", saved)
	}
	if b, _ := os.ReadFile(saved[0]); !bytes.Equal(b, torn) {
		t.Errorf("side file holds %q, want the torn bytes", b)
	}
	if out := verifyLog(t, d.auditLog); !strings.Contains(out, "1 torn tail(s) set aside") {
		t.Errorf("verify summary does not mention the torn tail: %s", out)
	}
}

// TestSighupRotatesAndChainContinues rotates the log with SIGHUP between two
// calls: two files, one chain.
func TestSighupRotatesAndChainContinues(t *testing.T) {
	requirePrereqs(t)
	dir := t.TempDir()
	d := startDaemon(t, dir)
	c := d.client()
	d.post(c, "CreateNetwork", `{"NetworkID":"4b9e000000000000000000000000000000000000000000000000000000000000"}`)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFiles := func() []string {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if m, _ := filepath.Glob(d.auditLog + ".*"); len(m) == 1 {
				return m
			}
		}
		t.Fatalf("no rotated file after SIGHUP")
		return nil
	}
	rotated := waitFiles()
	if filepath.Base(rotated[0]) != "audit.jsonl.00000000000000000001" {
		t.Errorf("rotated file %s, want audit.jsonl.00000000000000000001", rotated[0])
	}
	d.post(c, "Join", `{"NetworkID":"4b9e000000000000000000000000000000000000000000000000000000000000","EndpointID":"e1"}`)
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	// network.create, then in the new file the join and the host.view it names.
	if out := verifyLog(t, filepath.Dir(d.auditLog)); !strings.Contains(out, "ok: 3 records in 2 file(s)") {
		t.Errorf("verify after SIGHUP: %s", out)
	}
}

// TestSyslogSink: records reach a syslog collector as RFC 5424 messages, and
// a collector that is down delays and fails nothing.
func TestSyslogSink(t *testing.T) {
	requirePrereqs(t)
	collector, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer collector.Close()
	d := startDaemon(t, t.TempDir(), "--syslog", "udp://"+collector.LocalAddr().String())
	if code, err := d.post(d.client(), "CreateNetwork", `{"NetworkID":"5e55000000000000000000000000000000000000000000000000000000000000"}`); err != nil || code != 200 {
		t.Fatalf("CreateNetwork: %d %v", code, err)
	}
	collector.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, _, err := collector.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no syslog message: %v", err)
	}
	msg := string(buf[:n])
	recs := readAudit(t, d.auditLog)
	if !strings.HasPrefix(msg, "<86>1 ") || !strings.Contains(msg, " hostpass ") || !strings.Contains(msg, " network.create - ") ||
		!strings.HasSuffix(msg, recs[0].line) {
		t.Errorf("syslog message %q\nwant <86>1 ... hostpass PID network.create - <the record's line>", msg)
	}

	// A collector that is down: tcp to a port nothing listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := l.Addr().String()
	l.Close()
	d2 := startDaemon(t, t.TempDir(), "--syslog", "tcp://"+down)
	c := d2.client()
	for i := 0; i < 50; i++ {
		if code, err := d2.post(c, "Join", fmt.Sprintf(`{"NetworkID":"5157e7000000000000000000000000000000000000000000000000000000cafe","EndpointID":"e%d"}`, i)); err != nil || code != 200 {
			t.Fatalf("join %d with syslog down: %d %v", i, code, err)
		}
	}
	if n := len(readAudit(t, d2.auditLog)); n != 50 {
		t.Errorf("%d records with syslog down, want 50", n)
	}
}

// TestSealedLogOnRealDocker seals the log of a real dockerd's calls with a
// key that evolves every 3 records: the initial key, kept apart, verifies
// it; the daemon's own key file has moved on and cannot.
func TestSealedLogOnRealDocker(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	initial := filepath.Join(e.dir, "initial.key")
	run(t, hostpassBin(t), "audit", "keygen", initial)
	daemonKey := filepath.Join(e.dir, "seal.key")
	b, _ := os.ReadFile(initial)
	os.WriteFile(daemonKey, b, 0o600)

	p := newLegacyPlugin(t, e)
	p.extra = []string{"--seal-key", daemonKey, "--seal-epoch-records", "3"}
	p.start(t)
	e.docker(t, "network", "create", "-d", p.name, "n-sealed")
	e.docker(t, "run", "--rm", "--network", "n-sealed", image, "true")
	e.docker(t, "run", "--rm", "--network", "n-sealed", image, "true")
	waitCount(t, p.audit, 9)
	p.stop(t)

	if out := verifyLog(t, "--key", initial, p.audit); !strings.Contains(out, "seals verified, epochs 0-") {
		t.Errorf("verify --key: %s", out)
	}
	out, err := exec.Command(hostpassBin(t), "audit", "verify", "--key", daemonKey, p.audit).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "verify needs the initial key (epoch 0)") {
		t.Errorf("verify with the daemon's evolved key: %v\n%s\nwant a refusal naming the initial key", err, out)
	}
	if markers := filter(readAudit(t, p.audit), byEvent("audit.epoch", "ok")); len(markers) < 2 {
		t.Errorf("want an audit.epoch record every 3 records, got %d", len(markers))
	}
}

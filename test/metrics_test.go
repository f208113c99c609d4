//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const (
	prometheusReady = 30 * time.Second
	prometheusStop  = 15 * time.Second
	// metricsWait bounds the wait for a value to reach Prometheus: the
	// watcher's handling, a 1 s scrape, the query.
	metricsWait = 30 * time.Second
)

// prometheusConf scrapes the daemon's --metrics port every second.
const prometheusConf = `# hostpass e2e: Debian's prometheus, run by the test in the engine's network
# namespace, stopped by pid.
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: hostpass
    static_configs:
      - targets: ["127.0.0.1:%d"]
`

// prom is Debian's prometheus server in an engine's network namespace.
type prom struct {
	e    *engine
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// newPrometheus checks its configuration with promtool, starts prometheus
// in the foreground with its TSDB under the engine's DIR, and waits until it
// listens. Cleanup stops it by pid.
func newPrometheus(t testing.TB, e *engine, port, target int) *prom {
	t.Helper()
	for _, prog := range []string{"prometheus", "promtool", "curl"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s not found on PATH: install prometheus and curl (scripts/deps.sh, .ci/run)", prog)
		}
	}
	dir := e.mkdir(t, fmt.Sprintf("prometheus-%d", port))
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(prometheusConf, target)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "config", conf).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config %s: %v\n%s", conf, err, out)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p := &prom{e: e, port: port}
	p.cmd = e.nsenter("prometheus", "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("prometheus output (tail):\n%s", tail(logPath, 20))
		}
	})
	deadline := time.Now().Add(prometheusReady)
	for !listening(p.cmd.Process.Pid, "tcp", port) {
		select {
		case <-p.done:
			p.cmd = nil
			t.Fatalf("prometheus exited during start-up; output:\n%s", tail(logPath, 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not listening on 127.0.0.1:%d after %s; output:\n%s", port, prometheusReady, tail(logPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// stop sends prometheus SIGTERM and waits; SIGKILL past prometheusStop.
func (p *prom) stop(t testing.TB) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(prometheusStop):
		t.Errorf("prometheus (pid %d) ignored SIGTERM for %s; killing it", p.cmd.Process.Pid, prometheusStop)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// query asks prometheus's HTTP API (/api/v1/query), from inside the
// namespace, for the instant value of expr; ok is false while it has none.
func (p *prom) query(t testing.TB, expr string) (v float64, ok bool) {
	t.Helper()
	out, err := p.e.nsenter("curl", "-sS", "--max-time", "5", "-G",
		fmt.Sprintf("http://127.0.0.1:%d/api/v1/query", p.port), "--data-urlencode", "query="+expr).Output()
	if err != nil {
		return 0, false
	}
	var resp struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("prometheus answered %q: %v", out, err)
	}
	if resp.Status != "success" || len(resp.Data.Result) != 1 {
		return 0, false
	}
	s, _ := resp.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(s, 64)
	return v, err == nil
}

// waitQuery polls expr until prometheus reads want.
func (p *prom) waitQuery(t testing.TB, expr string, want float64) {
	t.Helper()
	var v float64
	var ok bool
	for deadline := time.Now().Add(metricsWait); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if v, ok = p.query(t, expr); ok && v == want {
			return
		}
	}
	t.Fatalf("prometheus reads %s = %v (has a value: %v) after %s, want %v", expr, v, ok, metricsWait, want)
}

// TestMetricsPrometheus: Debian's prometheus scrapes a legacy plugin's
// --metrics port in the engine's namespace, and reads the host-mode gauge
// that a --network host container moves: 0, 1 while it runs, 0 after; and
// the watcher's lag histogram, which its events fed.
func TestMetricsPrometheus(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	const metricsPort, promPort = 19632, 19090
	d := newLegacyPlugin(t, e)
	d.watch = true
	d.extra = []string{"--metrics", fmt.Sprintf("tcp://127.0.0.1:%d", metricsPort)}
	d.start(t)
	p := newPrometheus(t, e, promPort, metricsPort)

	p.waitQuery(t, `up{job="hostpass"}`, 1)
	p.waitQuery(t, "hostpass_host_mode_containers", 0)
	p.waitQuery(t, `count(hostpass_build_info)`, 1)
	lintScrape(t, e, metricsPort)

	id := e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "hm", "--network", "host", image, "sleep", "300")
	t.Cleanup(func() { e.dockerTry("rm", "-f", id) })
	p.waitQuery(t, "hostpass_host_mode_containers", 1)
	e.docker(t, "stop", id)
	p.waitQuery(t, "hostpass_host_mode_containers", 0)
	p.waitQuery(t, `hostpass_audit_records_total{event="host.leave"}`, 1)
	// The watcher's events reached the lag histogram (how many: Docker's
	// business), and its first subscription was no reconnect.
	p.waitQuery(t, `count(hostpass_watcher_lag_seconds_count > 0)`, 1)
	p.waitQuery(t, `hostpass_watcher_reconnects_total`, 0)
}

// lintScrape fetches the daemon's /metrics from inside the namespace and
// runs Debian's `promtool check metrics` over it: the exposition a real
// scraper reads, not the handler in a unit test.
func lintScrape(t testing.TB, e *engine, port int) {
	t.Helper()
	scrape, err := e.nsenter("curl", "-sS", "--max-time", "5", fmt.Sprintf("http://127.0.0.1:%d/metrics", port)).Output()
	if err != nil {
		t.Fatalf("curl /metrics: %v", err)
	}
	check := exec.Command("promtool", "check", "metrics")
	check.Stdin = bytes.NewReader(scrape)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics over the daemon's scrape: %v\n%s", err, out)
	}
}

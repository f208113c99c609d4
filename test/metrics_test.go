//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
	stopProcess(t, "prometheus", p.cmd, p.done, prometheusStop)
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
	// The baseline: the series is scraped (a 0 alone proves little; the
	// 1 and the 0 after it below are the assertion).
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
	// dockerd restarted: the watcher follows its events again, which
	// counts one reconnect, and the window it could not follow is gap
	// seconds.
	e.stop(t)
	e.start(t)
	p.waitQuery(t, `hostpass_watcher_reconnects_total`, 1)
	p.waitQuery(t, `count(hostpass_watcher_gap_seconds_total > 0)`, 1)
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

// driverMethods are the only method label values the daemon may expose:
// the API's routes, whatever paths a client sends.
var driverMethods = map[string]bool{}

func init() {
	for _, m := range []string{"GetCapabilities", "GwAllocCheck", "CreateNetwork", "DeleteNetwork", "AllocateNetwork",
		"FreeNetwork", "CreateEndpoint", "DeleteEndpoint", "EndpointOperInfo", "Join", "Leave", "DiscoverNew",
		"DiscoverDelete", "ProgramExternalConnectivity", "RevokeExternalConnectivity"} {
		driverMethods["NetworkDriver."+m] = true
	}
}

// driverResults are the only result label values: ok, or a refusal's class.
var driverResults = map[string]bool{"ok": true, "invalid_parameter": true, "not_found": true, "unavailable": true, "error": true}

// scrapeUnix fetches /metrics over a unix socket with curl --unix-socket,
// from the host: a socket is reached by its path, whatever the namespace.
func scrapeUnix(t testing.TB, sock string) string {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "--fail", "--max-time", "5", "--unix-socket", sock, "http://hostpass/metrics").CombinedOutput()
	if err != nil {
		t.Fatalf("curl --unix-socket %s /metrics: %v\n%s", sock, err, out)
	}
	return string(out)
}

// scrapeTCP fetches /metrics from a loopback port in the engine's namespace.
func scrapeTCP(t testing.TB, e *engine, port int) string {
	t.Helper()
	out, err := e.nsenter("curl", "-sS", "--fail", "--max-time", "5", fmt.Sprintf("http://127.0.0.1:%d/metrics", port)).CombinedOutput()
	if err != nil {
		t.Fatalf("curl 127.0.0.1:%d/metrics in the engine's namespace: %v\n%s", port, err, out)
	}
	return string(out)
}

// wantSeries fails unless the exposition has each line in want (a series
// and its value), and lints it with promtool.
func wantSeries(t testing.TB, scrape string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(scrape, "\n"+w+"\n") {
			t.Errorf("scrape lacks the line %q", w)
		}
	}
	if !strings.Contains(scrape, "\nhostpass_build_info{") {
		t.Errorf("scrape lacks hostpass_build_info")
	}
	check := exec.Command("promtool", "check", "metrics")
	check.Stdin = strings.NewReader(scrape)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", scrape)
	}
}

// labelValues returns the values label takes in metric's series.
func labelValues(scrape, metric, label string) map[string]bool {
	vals := map[string]bool{}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(metric) + `\{[^}]*\b` + label + `="([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(scrape, -1) {
		vals[m[1]] = true
	}
	return vals
}

// TestMetricsUnixSocket: a legacy plugin serves --metrics on a unix socket
// in a directory it makes, mode 0660 as docs/metrics.md says; curl
// --unix-socket (Debian's prometheus cannot scrape a socket) reads the
// driver calls a docker run caused. A hostile client's unknown methods and
// odd paths on the plugin socket add no label value; the socket goes with
// the daemon.
func TestMetricsUnixSocket(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	sock := filepath.Join(e.dir, "run", "hostpass", "metrics.sock") // its folder does not exist yet
	d := newLegacyPlugin(t, e)
	d.extra = []string{"--metrics", "unix://" + sock}
	d.start(t)

	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatalf("metrics socket: %v", err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("metrics socket %s: mode %v, uid %d; want a socket, 0660, root's", sock, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
	}

	e.docker(t, "network", "create", "-d", d.name, "n-unix")
	e.docker(t, "run", "--rm", "--network", "n-unix", image, "true")
	wantSeries(t, scrapeUnix(t, sock),
		`hostpass_driver_requests_total{method="NetworkDriver.CreateNetwork",result="ok"} 1`,
		`hostpass_driver_requests_total{method="NetworkDriver.Join",result="ok"} 1`,
		`hostpass_driver_requests_total{method="NetworkDriver.Leave",result="ok"} 1`,
		`hostpass_audit_records_total{event="endpoint.join"} 1`,
		`hostpass_dropped_lines_total{sink="daemon_log"} 0`,
	)

	// A hostile client on the plugin socket: unknown methods, paths that
	// name a method in a roundabout way, and a malformed body.
	for _, path := range []string{"/NetworkDriver.Bogus", "/NetworkDriver.Join%2F..", "//NetworkDriver.Join",
		"/x/../NetworkDriver.Join", "/NetworkDriver.JOIN", "/" + strings.Repeat("A", 4000), "/Plugin.Bogus"} {
		out, err := exec.Command("curl", "-sS", "--max-time", "5", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
			"--unix-socket", d.sock, "-X", "POST", "-d", "{}", "http://hostpass"+path).CombinedOutput()
		if err != nil || string(out) == "200" {
			t.Errorf("POST %.60s on the plugin socket: %v, status %s; want a refusal", path, err, out)
		}
	}
	exec.Command("curl", "-sS", "--max-time", "5", "-o", "/dev/null", "--unix-socket", d.sock,
		"-X", "POST", "-d", "not json", "http://hostpass/NetworkDriver.Join").Run()
	scrape := scrapeUnix(t, sock)
	for _, metric := range []string{"hostpass_driver_requests_total", "hostpass_driver_request_duration_seconds_count"} {
		for v := range labelValues(scrape, metric, "method") {
			if !driverMethods[v] {
				t.Errorf("%s has method=%q: a client's path made a label value", metric, v)
			}
		}
	}
	for v := range labelValues(scrape, "hostpass_driver_requests_total", "result") {
		if !driverResults[v] {
			t.Errorf("hostpass_driver_requests_total has result=%q, outside the fixed set", v)
		}
	}
	wantSeries(t, scrape, `hostpass_driver_requests_total{method="NetworkDriver.Join",result="invalid_parameter"} 1`)
	if strings.Contains(scrape, e.networkID(t, "n-unix")) {
		t.Errorf("the scrape names the network's ID")
	}

	if !d.terminate() {
		t.Fatalf("hostpass did not stop on SIGTERM")
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("metrics socket %s still there after the daemon stopped: %v", sock, err)
	}
}

// TestMetricsManagedPlugin: HOSTPASS_METRICS set on the managed plugin
// before enable, in both forms docs/metrics.md gives. unix:///run/docker/
// plugins/metrics.sock, inside the plugin, is beside its plugin socket on
// the host: /run/docker/plugins/ID/metrics.sock. tcp://127.0.0.1:PORT is the host's loopback, as the plugin
// shares the host's network (config.json). Each scrape shows
// hostpass_build_info and the Join the test's docker run caused.
func TestMetricsManagedPlugin(t *testing.T) {
	const metricsPort = 19633
	e := newEngine(t)
	e.loadBusybox(t)
	varLog := e.mkdir(t, "m-log")
	name := "hp-metrics-" + randHex(t, 4) + ":latest"
	e.make(t, "plugin", "PLUGIN_NAME="+name, "BUILD="+filepath.Join(e.dir, "build"), "PLUGIN_SETTINGS="+strings.Join([]string{
		"varlog.source=" + varLog, "docker.source=/dev/null", "HOSTPASS_WATCH=false",
		"HOSTPASS_METRICS=unix:///run/docker/plugins/metrics.sock"}, " "))
	if !pluginEnabled(t, e, name) {
		t.Fatalf("plugin %s not enabled after make plugin", name)
	}
	id := e.docker(t, "plugin", "inspect", "-f", "{{.Id}}", name)
	// dockerd keeps a plugin's runtime folder in /run/docker/plugins/ID
	// whatever its --exec-root (a longer path could pass a socket path's
	// 108 bytes), and binds it on the plugin's /run/docker/plugins.
	sock := filepath.Join(pluginDir, id, "metrics.sock")
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("the managed plugin's metrics socket on the host, %s: %v, %v; want a socket, 0660", sock, fi, err)
	}

	e.docker(t, "network", "create", "-d", name, "n-managed")
	e.docker(t, "run", "--rm", "--network", "n-managed", image, "true")
	wantSeries(t, scrapeUnix(t, sock),
		`hostpass_driver_requests_total{method="NetworkDriver.CreateNetwork",result="ok"} 1`,
		`hostpass_driver_requests_total{method="NetworkDriver.Join",result="ok"} 1`)

	// That the socket goes with the daemon is not asserted here: dockerd
	// removes the plugin's whole runtime folder on disable, so it would
	// pass whatever hostpass did. TestMetricsUnixSocket (legacy) and the
	// daemon's and metrics' unit tests carry it.
	e.docker(t, "plugin", "disable", "-f", name)
	e.docker(t, "plugin", "set", name, fmt.Sprintf("HOSTPASS_METRICS=tcp://127.0.0.1:%d", metricsPort))
	e.docker(t, "plugin", "enable", name)
	e.docker(t, "run", "--rm", "--network", "n-managed", image, "true")
	e.docker(t, "run", "--rm", "--network", "n-managed", image, "true")
	wantSeries(t, scrapeTCP(t, e, metricsPort),
		`hostpass_driver_requests_total{method="NetworkDriver.Join",result="ok"} 2`)

	// A non-loopback address is refused at start: enable fails, and the
	// refusal, naming what is accepted, is in dockerd's log, where a
	// managed plugin's output goes.
	e.docker(t, "plugin", "disable", "-f", name)
	e.docker(t, "plugin", "set", name, "HOSTPASS_METRICS=tcp://0.0.0.0:9632")
	start := time.Now()
	out, err := e.dockerTry("plugin", "enable", name)
	if err == nil {
		t.Fatalf("docker plugin enable with HOSTPASS_METRICS=tcp://0.0.0.0:9632 succeeded; want it refused")
	}
	t.Logf("docker plugin enable with a non-loopback address (%s): %s", time.Since(start).Round(time.Millisecond), out)
	b, err := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `--metrics: \"tcp://0.0.0.0:9632\" is not a loopback address`) {
		t.Errorf("dockerd's log lacks the plugin's refusal of tcp://0.0.0.0:9632")
	}
}

// metricValue is the value of the series line that starts with series
// (name and labels) in a scrape; ok is false without one.
func metricValue(scrape, series string) (v float64, ok bool) {
	for _, line := range strings.Split(scrape, "\n") {
		if rest, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(rest, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// TestMetricsCountsDaemonLogDrops: hostpass serve's stdout and stderr are a
// pipe that is not read (a FIFO whose reader never reads, as dockerd's when
// it falls behind), or whose reader is gone. The daemon serves on, every
// call is audited, and hostpass_dropped_lines_total{sink="daemon_log"} counts the
// lines its log lost. A reader gone used to end the daemon at its first log
// line: Go's default for SIGPIPE on stdout.
func TestMetricsCountsDaemonLogDrops(t *testing.T) {
	requirePrereqs(t)
	const dropped = `hostpass_dropped_lines_total{sink="daemon_log"}`
	const netID = "5d07000000000000000000000000000000000000000000000000000000000000"
	run := func(t *testing.T, output *os.File, maxContainers int) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "metrics.sock")
		d := newDaemon(t, dir)
		d.extra = []string{"--watch=false", "--log-level", "debug", "--metrics", "unix://" + sock}
		d.output = output
		d.start(t)
		output.Close()
		c := d.client()
		if code, err := d.post(c, "CreateNetwork", `{"NetworkID":"`+netID+`"}`); err != nil || code != 200 {
			t.Fatalf("CreateNetwork: %d %v", code, err)
		}
		lost := 0.0
		n := 0
		for ; n < maxContainers && lost == 0; n++ {
			ep := fmt.Sprintf("ep-%06d", n)
			for _, call := range []struct{ method, body string }{
				{"CreateEndpoint", `{"NetworkID":"` + netID + `","EndpointID":"` + ep + `","Interface":{}}`},
				{"Join", `{"NetworkID":"` + netID + `","EndpointID":"` + ep + `","SandboxKey":"/var/run/docker/netns/` + ep + `"}`},
			} {
				if code, err := d.post(c, call.method, call.body); err != nil || code != 200 {
					t.Fatalf("%s of %s: %d %v", call.method, ep, code, err)
				}
			}
			if n%100 == 0 {
				v, ok := metricValue(scrapeUnix(t, sock), dropped)
				if !ok {
					t.Fatalf("the scrape has no %s series", dropped)
				}
				lost = v
			}
		}
		if lost == 0 {
			t.Fatalf("%s is 0 after %d containers logged at debug to a pipe nobody reads", dropped, n)
		}
		if joins := len(filter(readAudit(t, d.audit), byEvent("endpoint.join", "ok"))); joins != n {
			t.Errorf("%d endpoint.join records for %d joins answered ok", joins, n)
		}
		t.Logf("%s = %v after %d containers", dropped, lost, n)
		if !d.terminate() || d.exitErr != nil {
			t.Errorf("hostpass serve after SIGTERM: %v", d.exitErr)
		}
	}
	t.Run("not read", func(t *testing.T) {
		writer := unreadFIFO(t)
		// A 64 KiB pipe and a 1 MiB queue fill in a few hundred
		// containers at debug.
		run(t, writer, 20000)
	})
	t.Run("reader gone", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		run(t, w, 1)
	})
}

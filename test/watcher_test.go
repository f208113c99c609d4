//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// sentinel runs a --network host container and waits for its host.join:
// the watcher handles events only once it has reconciled, so by then
// whatever the reconciliation writes is written.
func (d *daemon) sentinel(t testing.TB, name string) {
	t.Helper()
	id := d.e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", name, "--network", "host", image, "sleep", "300")
	t.Cleanup(func() { d.e.dockerTry("rm", "-f", id) })
	waitAudit(t, d.audit, "host.join of "+name, func(r []record) bool { return len(filter(r, byContainer(name))) == 1 })
}

// TestWatcher drives the watcher on a real dockerd: --network host
// containers, attribution on a hostpass network, a container that was
// already running, and show --container.
func TestWatcher(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	// Running before hostpass starts: found by reconciling, marked late.
	e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "early", "--network", "host", image, "sleep", "300")
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.start(t)

	t.Run("already-running", func(t *testing.T) {
		recs := waitAudit(t, p.audit, "host.join of early", func(r []record) bool {
			return len(filter(filter(r, byEvent("host.join", "ok")), byContainer("early"))) == 1
		})
		j := filter(recs, byContainer("early"))[0]
		if !j.ObservedLate || j.Container.Image != image || !hasInterface(j.HostInterfaces, "lo") || j.Container.StartedAt == "" {
			t.Errorf("host.join of a container running before hostpass: want observed_late, image, host interfaces, start:\n%s", j.line)
		}
	})

	t.Run("host-mode", func(t *testing.T) {
		e.docker(t, "run", "--rm", "--name", "hm", "--label", "team=ops", "--cap-add", "NET_ADMIN", "--network", "host", image, "sleep", "2")
		recs := waitAudit(t, p.audit, "host.leave of hm", func(r []record) bool {
			return len(filter(filter(r, byEvent("host.leave", "ok")), byContainer("hm"))) == 1
		})
		mine := filter(recs, byContainer("hm"))
		if len(mine) != 2 || mine[0].Event != "host.join" || mine[1].Event != "host.leave" {
			t.Fatalf("want host.join then host.leave for hm, got:\n%s", dumpRecords(mine))
		}
		j, l := mine[0], mine[1]
		if j.ObservedLate || j.Container.Image != image || j.Container.Labels["team"] != "ops" || len(j.Container.CapAdd) != 1 || !hasInterface(j.HostInterfaces, "docker0") {
			t.Errorf("host.join: want it live, image %s, label team=ops, cap NET_ADMIN, the engine's links:\n%s", image, j.line)
		}
		if l.HostModeSeconds == nil || *l.HostModeSeconds < 1.5 || *l.HostModeSeconds > 30 {
			t.Errorf("host.leave: want about 2 s in host mode (sleep 2):\n%s", l.line)
		}
		checkSeq(t, recs)
	})

	t.Run("attribution", func(t *testing.T) {
		id := e.docker(t, "network", "create", "-d", p.name, "--label", "owner=payments", "-o", "tag=attr", "n-attr")
		e.docker(t, "run", "--rm", "--name", "payer", "-p", "18080:80", "--network", "n-attr", image, "true")
		recs := waitAudit(t, p.audit, "endpoint.attribute of payer", func(r []record) bool {
			return len(filter(filter(r, byEvent("endpoint.attribute", "ok")), byContainer("payer"))) == 1
		})
		a := filter(recs, byContainer("payer"))[0]
		joins := filter(filter(recs, byEvent("endpoint.join", "ok")), func(r record) bool { return r.NetworkID == id })
		if len(joins) != 1 || a.EndpointID != joins[0].EndpointID || a.NetworkID != id || a.NetworkName != "n-attr" ||
			a.NetworkLabels["owner"] != "payments" || a.Container.Image != image || len(a.Container.Ports) != 1 || !strings.Contains(a.Container.Ports[0], "18080->80/tcp") {
			t.Errorf("endpoint.attribute: want the join's endpoint, network n-attr with its label, image, port 18080:\n%s\njoins:\n%s", a.line, dumpRecords(joins))
		}
		out := run(t, hostpassBin(t), "audit", "show", "--container", "payer", p.audit)
		for _, ev := range []string{"endpoint.create", "endpoint.join", "endpoint.attribute", "endpoint.leave", "endpoint.delete"} {
			if !strings.Contains(out, " "+ev+" ") {
				t.Errorf("show --container payer lacks %s:\n%s", ev, out)
			}
		}
		if strings.Contains(out, "host.join") {
			t.Errorf("show --container payer lists another container's records:\n%s", out)
		}
		if byName := run(t, hostpassBin(t), "audit", "show", "--network", "n-attr", "--event", "endpoint.join", p.audit); strings.Count(byName, "endpoint.join") != 1 {
			t.Errorf("show --network n-attr (a name) --event endpoint.join:\n%s", byName)
		}
	})

	t.Run("dockerd-restart", func(t *testing.T) {
		e.stop(t)
		e.start(t) // the watcher reconnects with backoff meanwhile
		e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "after", "--network", "host", image, "sleep", "300")
		waitAudit(t, p.audit, "host.join of after", func(r []record) bool {
			return len(filter(filter(r, byEvent("host.join", "ok")), byContainer("after"))) == 1
		})
		// early died with the dockerd restart: its session is closed.
		recs := waitAudit(t, p.audit, "host.leave of early", func(r []record) bool {
			return len(filter(filter(r, byEvent("host.leave", "ok")), byContainer("early"))) == 1
		})
		checkSeq(t, recs)
		verifyLog(t, p.audit)
	})
}

// TestWatcherOffOrWithoutDocker: with the watcher off, or pointed at a socket
// that does not exist, the driver works as before and says so once.
func TestWatcherOffOrWithoutDocker(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	for _, tc := range []struct {
		name string
		flag string
		said string
	}{
		{"watch-false", "--watch=false", "watcher off (--watch=false)"},
		{"no-socket", "--docker-socket=/nonexistent/docker.sock", "Docker's API is unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newLegacyPlugin(t, e)
			p.args = []string{"serve", "--socket", p.sock, "--audit-log", p.audit, "--state-dir", p.state, tc.flag}
			p.start(t)
			net := "n-" + tc.name
			id := e.docker(t, "network", "create", "-d", p.name, net)
			e.docker(t, "run", "--rm", "--network", net, image, "true")
			recs := waitCount(t, p.audit, 5)
			checkRun(t, recs[1:], id, "", false)
			time.Sleep(3 * time.Second) // let a retrying watcher retry a few times
			if n := len(readAudit(t, p.audit)); n != 5 {
				t.Errorf("%d records, want the driver's 5 only", n)
			}
			b, _ := os.ReadFile(p.logPath)
			if n := strings.Count(string(b), tc.said); n != 1 {
				t.Errorf("the daemon's log says %q %d times, want once:\n%s", tc.said, n, b)
			}
		})
	}
}

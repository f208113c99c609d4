//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// via returns the record's via member: the container whose network
// namespace the record's container shares.
func via(t testing.TB, r record) (id, name string) {
	t.Helper()
	var v struct {
		Via *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"via"`
	}
	if err := json.Unmarshal([]byte(r.line), &v); err != nil {
		t.Fatalf("record %s: %v", r.line, err)
	}
	if v.Via == nil {
		return "", ""
	}
	return v.Via.ID, v.Via.Name
}

// TestWatcherSharedNamespace: containers started with --network container:X
// are recorded through X: host.join/host.leave when X is in host mode,
// endpoint.attribute (and the policy) when X is on a hostpass network, live
// and, after a restart of hostpass, by reconciling. Records on an --internal
// hostpass network say so.
func TestWatcherSharedNamespace(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.extra = []string{"--policy-allow", "label:team=payments"}
	p.start(t)
	netID := e.docker(t, "network", "create", "-d", p.name, "--internal", "-o", "tag=shared", "n-shared")
	var started []string
	// Runs before the plugin stops (cleanups run last first).
	t.Cleanup(func() { e.dockerTry(append([]string{"rm", "-f"}, started...)...) })
	run := func(name string, args ...string) string {
		t.Helper()
		started = append(started, name)
		return e.docker(t, append(append([]string{"run", "-d", "--stop-timeout", "1", "--name", name}, args...), image, "sleep", "300")...)
	}
	of := func(name string) func(record) bool { return byContainer(name) }
	checkVia := func(r record, wantID, wantName string) {
		t.Helper()
		if id, name := via(t, r); id != wantID || name != wantName {
			t.Errorf("%s of %s: via %q (%q), want %q (%q):\n%s", r.Event, r.Container.Name, id, name, wantID, wantName, r.line)
		}
	}

	xh := run("xh", "--network", "host")
	xp := run("xp", "--label", "team=payments", "--network", "n-shared")

	t.Run("host-mode", func(t *testing.T) {
		run("yh", "--network", "container:xh")
		recs := waitAudit(t, p.audit, "host.join of yh", func(r []record) bool { return len(filter(r, of("yh"))) == 1 })
		e.docker(t, "rm", "-f", "yh")
		recs = waitAudit(t, p.audit, "host.leave of yh", func(r []record) bool { return len(filter(r, of("yh"))) == 2 })
		mine := filter(recs, of("yh"))
		if mine[0].Event != "host.join" || mine[1].Event != "host.leave" || mine[0].ObservedLate {
			t.Fatalf("records of yh: want host.join then host.leave, live:\n%s", dumpRecords(mine))
		}
		for _, r := range mine {
			checkVia(r, xh, "xh")
		}
		if !hasInterface(mine[0].HostInterfaces, "lo") || mine[1].HostModeSeconds == nil {
			t.Errorf("want the host's interfaces on the join and the time in host mode on the leave:\n%s", dumpRecords(mine))
		}
	})

	t.Run("hostpass", func(t *testing.T) {
		xpEndpoint := e.docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \"n-shared\").EndpointID}}", "xp")
		run("yp", "--network", "container:xp")
		recs := waitAudit(t, p.audit, "policy.violation of yp", func(r []record) bool {
			return len(filter(filter(r, byEvent("policy.violation", "ok")), of("yp"))) == 1
		})
		x := filter(filter(recs, byEvent("endpoint.attribute", "ok")), of("xp"))
		y := filter(recs, of("yp"))
		if len(x) != 1 || len(y) != 2 || y[0].Event != "endpoint.attribute" || y[1].Event != "policy.violation" {
			t.Fatalf("want one endpoint.attribute of xp, and of yp an endpoint.attribute and a policy.violation:\n%s", dumpRecords(append(x, y...)))
		}
		for _, r := range append(x, y...) {
			if r.NetworkID != netID || r.EndpointID != xpEndpoint || r.Tag != "shared" || r.Driver != p.name {
				t.Errorf("%s of %s: want network %s, xp's endpoint %s, tag shared, driver %s:\n%s", r.Event, r.Container.Name, netID, xpEndpoint, p.name, r.line)
			}
			f := fields(t, r)
			if string(f["internal"]) != "true" || string(f["adopted"]) != "false" {
				t.Errorf("%s of %s on an --internal network hostpass created: internal %s adopted %s, want true and false:\n%s", r.Event, r.Container.Name, f["internal"], f["adopted"], r.line)
			}
		}
		checkVia(y[0], xp, "xp")
		checkVia(y[1], xp, "xp")
		if y[1].Action != "recorded" || y[1].Policy != "label:team=payments" {
			t.Errorf("policy.violation of yp: want action recorded under label:team=payments:\n%s", y[1].line)
		}
		if id, _ := via(t, x[0]); id != "" {
			t.Errorf("endpoint.attribute of xp names a via:\n%s", x[0].line)
		}
	})

	t.Run("reconciled", func(t *testing.T) {
		p.stop(t)
		run("yh2", "--network", "container:xh")
		run("yp2", "--label", "team=payments", "--network", "container:xp")
		p.start(t)
		recs := waitAudit(t, p.audit, "records of yh2 and yp2", func(r []record) bool {
			return len(filter(r, of("yh2"))) == 1 && len(filter(r, of("yp2"))) == 1
		})
		yh2, yp2 := filter(recs, of("yh2"))[0], filter(recs, of("yp2"))[0]
		if yh2.Event != "host.join" || !yh2.ObservedLate || yp2.Event != "endpoint.attribute" || !yp2.ObservedLate {
			t.Errorf("want host.join of yh2 and endpoint.attribute of yp2, both observed late:\n%s%s", yh2.line, "\n"+yp2.line)
		}
		checkVia(yh2, xh, "xh")
		checkVia(yp2, xp, "xp")
		if strings.Count(dumpRecords(filter(recs, of("xp"))), "endpoint.attribute") != 1 {
			t.Errorf("xp attributed again after the restart:\n%s", dumpRecords(filter(recs, of("xp"))))
		}
		checkSeq(t, recs)
		verifyLog(t, p.audit)
	})
}

// A container in the namespace of one that connects to a hostpass network
// is on that network too: it is attributed, and the policy stops it.
func TestWatcherSharerOfAConnectingOwner(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.extra = []string{"--policy-allow", "label:team=payments", "--policy-stop"}
	p.start(t)
	e.docker(t, "network", "create", "-d", p.name, "-o", "tag=x", "hpnet")
	x := e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "xown", "--label", "team=payments", image, "sleep", "300")
	y := e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "yshare", "--network", "container:xown", image, "sleep", "300")
	t.Cleanup(func() { e.dockerTry("rm", "-f", y, x) })
	p.sentinel(t, "sentinel") // both starts are handled
	e.docker(t, "network", "connect", "hpnet", "xown")
	recs := waitAudit(t, p.audit, "policy.violation of yshare", func(r []record) bool {
		return len(filter(filter(r, byEvent("policy.violation", "ok")), byContainer("yshare"))) == 1
	})
	a := filter(filter(recs, byEvent("endpoint.attribute", "ok")), byContainer("yshare"))
	if len(a) != 1 {
		t.Fatalf("want one endpoint.attribute of yshare:\n%s", dumpRecords(recs))
	}
	if id, name := via(t, a[0]); id != x || name != "xown" {
		t.Errorf("endpoint.attribute of yshare: via %q (%q), want xown:\n%s", id, name, a[0].line)
	}
	v := filter(filter(recs, byEvent("policy.violation", "ok")), byContainer("yshare"))[0]
	if v.Action != "stopped" {
		t.Errorf("policy.violation of yshare: action %q, want stopped:\n%s", v.Action, v.line)
	}
	if running := e.docker(t, "inspect", "-f", "{{.State.Running}}", "yshare"); running != "false" {
		t.Errorf("yshare running %s, want stopped by the policy", running)
	}
}

// A container in the host's namespace through one removed while hostpass
// was down cannot be placed: it is recorded as such, never left out.
func TestWatcherSharerOfARemovedOwner(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	x := e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "xown", "--network", "host", image, "sleep", "300")
	y := e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "yshare", "--network", "container:xown", image, "sleep", "300")
	t.Cleanup(func() { e.dockerTry("rm", "-f", y, x) })
	e.docker(t, "rm", "-f", "xown")
	p.start(t)
	recs := waitAudit(t, p.audit, "a record of yshare", func(r []record) bool { return len(filter(r, byContainer("yshare"))) > 0 })
	mine := filter(recs, byContainer("yshare"))
	if len(mine) != 1 || mine[0].Event != "container.unplaced" || mine[0].Outcome != "ok" || !mine[0].ObservedLate ||
		!strings.Contains(mine[0].Detail, x) || !strings.Contains(mine[0].Detail, "no longer knows") {
		t.Fatalf("want one container.unplaced of yshare, ok, late, naming xown's ID %s as gone:\n%s", x, dumpRecords(mine))
	}
}

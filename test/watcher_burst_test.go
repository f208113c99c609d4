//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
)

// fields returns the names of a record's members as written.
func fields(t testing.TB, r record) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.line), &m); err != nil {
		t.Fatalf("record %s: %v", r.line, err)
	}
	return m
}

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

func containerIDs(recs []record) []string {
	var ids []string
	for _, r := range recs {
		if r.Container != nil {
			ids = append(ids, r.Container.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// TestWatcherBurst: 50 --network host containers started at once, then
// removed at once, give exactly one host.join and one host.leave each, with
// their container IDs; host.* records carry no driver, network or flags.
func TestWatcherBurst(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.start(t)

	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := e.dockerTry("run", "-d", "--stop-timeout", "1", "--name", fmt.Sprint("burst", i), "--network", "host", image, "sleep", "300")
			if err != nil {
				errs <- fmt.Errorf("docker run burst%d: %v: %s", i, err, out)
			}
			ids[i] = out
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sort.Strings(ids)
	t.Cleanup(func() { e.dockerTry(append([]string{"rm", "-f"}, ids...)...) })

	joins := func(r []record) []record { return filter(r, byEvent("host.join", "ok")) }
	leaves := func(r []record) []record { return filter(r, byEvent("host.leave", "ok")) }
	waitAudit(t, p.audit, fmt.Sprint(n, " host.join"), func(r []record) bool { return len(joins(r)) >= n })
	if out, err := e.dockerTry(append([]string{"rm", "-f"}, ids...)...); err != nil {
		t.Fatalf("docker rm -f: %v\n%s", err, out)
	}
	recs := waitAudit(t, p.audit, fmt.Sprint(n, " host.leave"), func(r []record) bool { return len(leaves(r)) >= n })
	if got := containerIDs(joins(recs)); !equal(got, ids) {
		t.Errorf("host.join container IDs:\n%v\nwant the %d started:\n%v", got, n, ids)
	}
	if got := containerIDs(leaves(recs)); !equal(got, ids) {
		t.Errorf("host.leave container IDs:\n%v\nwant the %d removed:\n%v", got, n, ids)
	}
	if len(recs) != 2*n {
		t.Errorf("%d records, want %d host.join and %d host.leave only:\n%s", len(recs), n, n, dumpRecords(recs))
	}
	for _, r := range recs {
		for _, f := range []string{"driver", "network_id", "internal", "adopted", "tag"} {
			if _, ok := fields(t, r)[f]; ok {
				t.Errorf("%s carries %q, which does not apply to Docker's host network:\n%s", r.Event, f, r.line)
			}
		}
		if r.ObservedLate {
			t.Errorf("%s observed late, want live:\n%s", r.Event, r.line)
		}
	}
	checkSeq(t, recs)
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

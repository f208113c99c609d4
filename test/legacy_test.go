//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestLegacyPlugin drives bin/hostpass as a legacy plugin: network options,
// what containers see, and the audit trail of a container's life.
func TestLegacyPlugin(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.start(t)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("default-ipam", func(t *testing.T) {
		id := e.docker(t, "network", "create", "-d", p.name, "-o", "tag=e2e-default", "n-default")
		if got := e.networkID(t, "n-default"); got != id {
			t.Fatalf("network create printed %q, inspect says %q", id, got)
		}
		recs := waitCount(t, p.audit, 1)
		c := last(t, recs)
		if c.Event != "network.create" || c.Outcome != "ok" {
			t.Fatalf("last record is %s %s, want network.create ok:\n%s", c.Event, c.Outcome, c.line)
		}
		if c.NetworkID != id {
			t.Errorf("network.create network_id %q, want %q", c.NetworkID, id)
		}
		if c.Tag != "e2e-default" {
			t.Errorf("network.create tag %q, want e2e-default", c.Tag)
		}
		if _, twice := c.Options["com.docker.network.generic"]; twice || c.Options["com.docker.network.enable_ipv6"] != false {
			t.Errorf("network.create options %v: want them as Docker sent them, but the tag, which is in tag alone", c.Options)
		}
		if c.Internal {
			t.Errorf("network.create internal=true on a network created without --internal")
		}
		if len(c.IPAMPools) == 0 {
			t.Errorf("network.create with the default IPAM has no ipam_pools:\n%s", c.line)
		}
		if c.Driver != p.name {
			t.Errorf("network.create driver %q, want %q", c.Driver, p.name)
		}
		if c.Host != hostname {
			t.Errorf("network.create host %q, want %q", c.Host, hostname)
		}
		checkTime(t, c)

		// A full docker run --rm: four endpoint records, and lo + eth0
		// (Docker's gateway bridge) inside the container.
		before := len(recs)
		if got, want := e.interfaces(t, "n-default"), []string{"eth0", "lo"}; !equal(got, want) {
			t.Errorf("container interfaces %v, want %v", got, want)
		}
		recs = waitCount(t, p.audit, before+4)
		checkRun(t, recs[before:], id, "e2e-default", false)
		// The join's host view is the engine's namespace, the "host" of a
		// --network host container on this engine: its docker0 is there.
		if join := recs[before+1]; !hasInterface(join.HostInterfaces, "docker0") {
			t.Errorf("endpoint.join host_interfaces lack the engine's docker0:\n%s", join.line)
		}

		// network rm: network.delete.
		e.docker(t, "network", "rm", "n-default")
		recs = waitCount(t, p.audit, before+5)
		d := last(t, recs)
		if d.Event != "network.delete" || d.Outcome != "ok" || d.NetworkID != id {
			t.Errorf("after network rm the last record is %s %s %s, want network.delete ok %s", d.Event, d.Outcome, d.NetworkID, id)
		}
		checkTime(t, d)
		checkSeq(t, recs)
	})

	t.Run("null-ipam", func(t *testing.T) {
		before := len(readAudit(t, p.audit))
		id := e.docker(t, "network", "create", "-d", p.name, "--ipam-driver", "null", "-o", "tag=e2e-null", "n-null")
		recs := waitCount(t, p.audit, before+1)
		c := last(t, recs)
		if c.Event != "network.create" || c.Outcome != "ok" || c.NetworkID != id || c.Tag != "e2e-null" {
			t.Fatalf("want network.create ok for %s tag e2e-null, got:\n%s", id, c.line)
		}
		t.Logf("ipam_pools with --ipam-driver null: %q", c.IPAMPools)
		if got, want := e.interfaces(t, "n-null"), []string{"eth0", "lo"}; !equal(got, want) {
			t.Errorf("container interfaces %v, want %v", got, want)
		}
		recs = waitCount(t, p.audit, before+5)
		checkRun(t, recs[before+1:], id, "e2e-null", false)
		checkSeq(t, recs)
	})

	t.Run("internal", func(t *testing.T) {
		before := len(readAudit(t, p.audit))
		id := e.docker(t, "network", "create", "-d", p.name, "--internal", "-o", "tag=e2e-internal", "n-internal")
		recs := waitCount(t, p.audit, before+1)
		c := last(t, recs)
		if c.Event != "network.create" || c.Outcome != "ok" || c.NetworkID != id {
			t.Fatalf("want network.create ok for %s, got:\n%s", id, c.line)
		}
		if !c.Internal {
			t.Errorf("network.create of an --internal network has internal=false:\n%s", c.line)
		}
		// No gateway service on an internal network: loopback only.
		if got, want := e.interfaces(t, "n-internal"), []string{"lo"}; !equal(got, want) {
			t.Errorf("container interfaces %v, want %v", got, want)
		}
		recs = waitCount(t, p.audit, before+5)
		checkRun(t, recs[before+1:], id, "e2e-internal", false)
		checkSeq(t, recs)
	})

	t.Run("unknown-option", func(t *testing.T) {
		const want = `unknown network option "foo"; accepted options: tag`
		before := len(readAudit(t, p.audit))
		out, err := e.dockerTry("network", "create", "-d", p.name, "-o", "foo=bar", "n-bad")
		if err == nil {
			t.Fatalf("network create with -o foo=bar succeeded: %s", out)
		}
		if !strings.Contains(out, "NetworkDriver.CreateNetwork: "+want) {
			t.Errorf("network create -o foo=bar said:\n%s\nwant it to contain:\nNetworkDriver.CreateNetwork: %s", out, want)
		}
		if _, err := e.dockerTry("network", "inspect", "n-bad"); err == nil {
			t.Errorf("network n-bad exists after a refused create")
		}
		recs := waitCount(t, p.audit, before+1)
		r := last(t, recs)
		if r.Event != "network.create" || r.Outcome != "refused" || r.Error != want {
			t.Errorf("want a network.create record, outcome refused, error %q; got:\n%s", want, r.line)
		}
		checkSeq(t, recs)
	})

	t.Run("env-config", func(t *testing.T) {
		// HOSTPASS_* variables configure serve; a flag wins over its variable.
		q := newLegacyPlugin(t, e)
		decoy := filepath.Join(e.dir, q.name, "decoy.jsonl")
		q.env = []string{
			"HOSTPASS_SOCKET=" + q.sock,
			"HOSTPASS_STATE_DIR=" + q.state,
			"HOSTPASS_AUDIT_LOG=" + decoy,
			"HOSTPASS_LOG_LEVEL=debug",
		}
		q.args = []string{"serve", "--audit-log", q.audit}
		q.start(t) // waits for the socket named by HOSTPASS_SOCKET
		id := e.docker(t, "network", "create", "-d", q.name, "-o", "tag=e2e-env", "n-env")
		c := last(t, waitCount(t, q.audit, 1))
		if c.Event != "network.create" || c.NetworkID != id || c.Driver != q.name {
			t.Errorf("want network.create of %s by driver %s in the --audit-log file, got:\n%s", id, q.name, c.line)
		}
		if _, err := os.Stat(decoy); !os.IsNotExist(err) {
			t.Errorf("HOSTPASS_AUDIT_LOG %s used although --audit-log was given (stat: %v)", decoy, err)
		}
		if entries, err := os.ReadDir(q.state); err != nil || len(entries) == 0 {
			t.Errorf("HOSTPASS_STATE_DIR %s holds nothing after a network create (%v)", q.state, err)
		}
		if out := run(t, hostpassBin(t), "version"); !strings.HasPrefix(out, "hostpass ") {
			t.Errorf("hostpass version printed %q", out)
		}
		e.docker(t, "network", "rm", "n-env")
		q.stop(t)
	})

	t.Run("parallel-20", func(t *testing.T) {
		const n = 20
		id := e.docker(t, "network", "create", "-d", p.name, "-o", "tag=e2e-par", "n-par")
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if out, err := e.dockerTry("run", "--rm", "--network", "n-par", image, "true"); err != nil {
					errs <- fmt.Errorf("run %d: %v: %s", i, err, out)
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		onNet := func(r record) bool { return r.NetworkID == id }
		recs := waitAudit(t, p.audit, fmt.Sprintf("%d endpoint.delete records", n), func(recs []record) bool {
			return len(filter(filter(recs, onNet), byEvent("endpoint.delete", "ok"))) >= n
		})
		checkSeq(t, recs)
		mine := filter(recs, onNet)
		for _, ev := range []string{"endpoint.create", "endpoint.join", "endpoint.leave", "endpoint.delete"} {
			got := filter(mine, byEvent(ev, "ok"))
			if len(got) != n {
				t.Errorf("%d ok %s records on the network, want exactly %d", len(got), ev, n)
			}
			seen := map[string]bool{}
			for _, r := range got {
				seen[r.EndpointID] = true
			}
			if len(seen) != n {
				t.Errorf("%s records name %d distinct endpoints, want %d", ev, len(seen), n)
			}
		}
		if bad := filter(mine, func(r record) bool { return r.Outcome != "ok" }); len(bad) > 0 {
			t.Errorf("records not ok:\n%s", dumpRecords(bad))
		}
	})
	// The log a real dockerd produced verifies, and show finds a network's
	// records by its ID.
	t.Run("verify-and-show", func(t *testing.T) {
		verifyLog(t, p.audit)
		id := e.networkID(t, "n-par")
		out := run(t, hostpassBin(t), "audit", "show", "--network", id[:12], "--event", "endpoint.join", p.audit)
		rows := strings.Split(strings.TrimSpace(out), "\n")
		if len(rows) != 21 || !strings.HasPrefix(rows[0], "TIME ") {
			t.Fatalf("show --network %s --event endpoint.join: want a header and 20 rows, got:\n%s", id[:12], out)
		}
		for _, row := range rows[1:] {
			if f := strings.Fields(row); len(f) < 8 || f[2] != "endpoint.join" || f[3] != "ok" || f[4] != id[:12] || f[6] != "-" || f[7] != "e2e-par" {
				t.Errorf("row %q: want endpoint.join ok on %s tagged e2e-par", row, id[:12])
			}
		}
		jsonOut := run(t, hostpassBin(t), "audit", "show", "--json", "--network", id, p.audit)
		if n := strings.Count(jsonOut, "\n"); n != 81 { // network.create and 4 records for each of 20 runs
			t.Errorf("show --json --network %s printed %d records, want 81:\n%s", id, n, jsonOut)
		}
	})
}

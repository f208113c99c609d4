//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

// TestGwAllocChecker: hostpass answers GetCapabilities with
// "GwAllocChecker": true and NetworkDriver.GwAllocCheck with SkipIPv4 and
// SkipIPv6. Docker 28 and later ask it before each CreateNetwork and then
// reserve no gateway address on a default-IPAM network; older engines
// ignore the capability, never ask, and reserve one as before. Either way
// the network works as it always has. The expectations that differ by
// engine branch on the engine's API version.
func TestGwAllocChecker(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e) // logs every call at debug
	p.start(t)
	// Docker 28 (Engine API 1.48) is the first to send
	// NetworkDriver.GwAllocCheck (moby commit 634951457d, first in v28.0.0).
	version, asks := e.version, e.version.apiAtLeast(t, 48)
	t.Logf("engine %s: asks GwAllocCheck: %v", version, asks)

	// What the engine reads from the plugin: the capability is offered
	// whatever the engine, so an engine that never asks ignored it.
	resp, err := p.client().Post("http://hostpass/NetworkDriver.GetCapabilities", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	caps, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `{"Scope":"local","ConnectivityScope":"local","GwAllocChecker":true}`; strings.TrimSpace(string(caps)) != want {
		t.Fatalf("GetCapabilities answered %s, want %s", caps, want)
	}

	t.Run("default-ipam", func(t *testing.T) {
		id := e.docker(t, "network", "create", "-d", p.name, "-o", "tag=e2e-gw", "n-gw")
		recs := waitCount(t, p.audit, 1)
		c := last(t, recs)
		if c.Event != "network.create" || c.Outcome != "ok" || c.NetworkID != id || c.Tag != "e2e-gw" || len(c.IPAMPools) == 0 {
			t.Fatalf("want network.create ok for %s, tagged e2e-gw, with the default IPAM's pool; got:\n%s", id, c.line)
		}

		cfg := ipamConfig(t, e, "n-gw")
		t.Logf("%s: docker network inspect: IPAM config %+v", version, cfg)
		if len(cfg) == 0 || cfg[0].Subnet == "" {
			t.Fatalf("IPAM config %+v, want the default IPAM's subnet", cfg)
		}
		for _, c := range cfg {
			if asks && c.Gateway != "" {
				// 28+: GwAllocCheck said skip, so Docker reserved none.
				t.Errorf("engine %s: IPAM config %+v has gateway %s; want none after GwAllocCheck answered SkipIPv4", version, c, c.Gateway)
			}
			if !asks && c.Gateway == "" {
				// Before 28: the capability is ignored and Docker reserves
				// a gateway address in the pool, as it always did.
				t.Errorf("engine %s: IPAM config %+v has no gateway; an engine before 28 reserves one", version, c)
			}
		}

		// The network works as before: a full docker run --rm, lo + eth0
		// (Docker's gateway bridge) in the container, four endpoint records.
		if got, want := e.interfaces(t, "n-gw"), []string{"eth0", "lo"}; !equal(got, want) {
			t.Errorf("container interfaces %v, want %v", got, want)
		}
		recs = waitCount(t, p.audit, len(recs)+4)
		checkRun(t, recs[1:], id, "e2e-gw", false)
		checkSeq(t, recs)

		// The plugin's debug log: one line per call, named op=<method>.
		log := readLog(t, p.logPath)
		caps, check, create := strings.Index(log, "op=NetworkDriver.GetCapabilities"),
			strings.Index(log, "op=NetworkDriver.GwAllocCheck"), strings.Index(log, "op=NetworkDriver.CreateNetwork")
		if caps < 0 || create < 0 {
			t.Fatalf("the plugin's debug log names no GetCapabilities or CreateNetwork call; is it at debug?\n%s", tail(p.logPath, 20))
		}
		switch {
		case asks && (check < 0 || check > create):
			t.Errorf("engine %s: want a GwAllocCheck call before CreateNetwork in the plugin's log:\n%s", version, tail(p.logPath, 20))
		case !asks && check >= 0:
			t.Errorf("engine %s called GwAllocCheck; engines before 28 ignore the capability:\n%s", version, tail(p.logPath, 20))
		}
		// Neither ExternalConnectivity call reaches a hostpass endpoint
		// (docs/compatibility.md): Docker sends them to the endpoint that
		// gives the container its gateway, and hostpass's Join names none.
		// Docker sends them before the Leave and DeleteEndpoint recorded
		// above, and the plugin logs a call before answering it.
		for _, op := range []string{"op=NetworkDriver.ProgramExternalConnectivity", "op=NetworkDriver.RevokeExternalConnectivity"} {
			for _, line := range strings.Split(log, "\n") {
				if strings.Contains(line, op) {
					t.Errorf("engine %s sent a hostpass endpoint %s: %s", version, strings.TrimPrefix(op, "op="), line)
				}
			}
		}
		e.docker(t, "network", "rm", "n-gw")
	})

	// A gateway the user names is reserved on every engine: SkipIPv4 only
	// spares one Docker would have picked.
	t.Run("explicit-gateway", func(t *testing.T) {
		e.docker(t, "network", "create", "-d", p.name, "--subnet", "10.99.0.0/24", "--gateway", "10.99.0.254", "n-gw-set")
		cfg := ipamConfig(t, e, "n-gw-set")
		if len(cfg) != 1 || cfg[0].Subnet != "10.99.0.0/24" || cfg[0].Gateway != "10.99.0.254" {
			t.Errorf("engine %s: IPAM config %+v, want subnet 10.99.0.0/24 with gateway 10.99.0.254", version, cfg)
		}
		if got, want := e.interfaces(t, "n-gw-set"), []string{"eth0", "lo"}; !equal(got, want) {
			t.Errorf("container interfaces %v, want %v", got, want)
		}
		e.docker(t, "network", "rm", "n-gw-set")
	})
}

// ipamEntry is one entry of a network's IPAM config, as inspect shows it.
type ipamEntry struct{ Subnet, Gateway string }

// ipamConfig is the IPAM config `docker network inspect` shows for network.
func ipamConfig(t testing.TB, e *engine, network string) []ipamEntry {
	t.Helper()
	out := e.docker(t, "network", "inspect", "--format", "{{json .IPAM.Config}}", network)
	var cfg []ipamEntry
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("network inspect %s: IPAM config %q: %v", network, out, err)
	}
	return cfg
}

// readLog is the plugin's output so far.
func readLog(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("plugin log: %v", err)
	}
	return string(b)
}

package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/driver"
)

// plugin is the real handler over a real driver and audit log in a temp dir;
// only the host's links are faked.
type plugin struct {
	t        testing.TB
	srv      *httptest.Server
	auditLog string
	stateDir string
}

var fakeHost = []audit.Interface{{Name: "lo", Index: 1, MTU: 65536, Up: true, Addrs: []string{"127.0.0.1/8"}}}

func newPlugin(t testing.TB, auditLog, stateDir string) *plugin {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	a := audit.Open(auditLog, nil)
	d, err := driver.New(driver.Config{
		Name: "hp", Hostname: "testhost", StateDir: stateDir, Audit: a,
		HostInterfaces: func() []audit.Interface { return fakeHost },
		Log:            logrus.NewEntry(log),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(d, logrus.NewEntry(log)))
	t.Cleanup(func() { srv.Close(); a.Close() })
	return &plugin{t: t, srv: srv, auditLog: auditLog, stateDir: stateDir}
}

func startPlugin(t testing.TB) *plugin {
	dir := t.TempDir()
	return newPlugin(t, filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "state"))
}

// call posts body to method and returns the status and decoded reply.
func (p *plugin) call(method, body string) (int, map[string]any) {
	p.t.Helper()
	resp, err := http.Post(p.srv.URL+"/"+method, "application/json", strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		p.t.Fatalf("%s: reply is not JSON: %v", method, err)
	}
	return resp.StatusCode, out
}

func (p *plugin) ok(method, body string) map[string]any {
	p.t.Helper()
	code, out := p.call(method, body)
	if code != http.StatusOK {
		p.t.Fatalf("%s: status %d, reply %v", method, code, out)
	}
	return out
}

func (p *plugin) records() []audit.Record {
	p.t.Helper()
	f, err := os.Open(p.auditLog)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			p.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func (p *plugin) last() audit.Record {
	p.t.Helper()
	recs := p.records()
	if len(recs) == 0 {
		p.t.Fatal("audit log is empty")
	}
	return recs[len(recs)-1]
}

const (
	createTagged = `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","Options":{"com.docker.network.generic":{"tag":"payments"}},"IPv4Data":[{"AddressSpace":"null","Pool":"0.0.0.0/0"}]}`
	endpoint     = `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","EndpointID":"ep1"}`
)

func TestActivateAndCapabilities(t *testing.T) {
	p := startPlugin(t)
	if got := p.ok("Plugin.Activate", ""); got["Implements"].([]any)[0] != "NetworkDriver" {
		t.Errorf("Activate = %v", got)
	}
	got := p.ok("NetworkDriver.GetCapabilities", "")
	if got["Scope"] != "local" || got["ConnectivityScope"] != "local" {
		t.Errorf("GetCapabilities = %v, want local/local", got)
	}
}

func TestLifecycleIsAuditedInOrder(t *testing.T) {
	p := startPlugin(t)
	p.ok("NetworkDriver.CreateNetwork", createTagged)
	ep := p.ok("NetworkDriver.CreateEndpoint", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","EndpointID":"ep1","Interface":{"Address":"172.18.0.2/16"}}`)
	if ep["Interface"] != nil {
		t.Errorf("CreateEndpoint echoed an Interface: %v; Docker would roll the endpoint back", ep)
	}
	join := p.ok("NetworkDriver.Join", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","EndpointID":"ep1","SandboxKey":"/var/run/docker/netns/abc"}`)
	if join["DisableGatewayService"] != false || join["Gateway"] != "" || join["StaticRoutes"] != nil {
		t.Errorf("Join = %v, want nothing handed out and the gateway service left on", join)
	}
	info := p.ok("NetworkDriver.EndpointOperInfo", endpoint)
	if v := info["Value"].(map[string]any); v["hostpass.tag"] != "payments" {
		t.Errorf("EndpointOperInfo = %v, want the network's tag", info)
	}
	p.ok("NetworkDriver.Leave", endpoint)
	p.ok("NetworkDriver.DeleteEndpoint", endpoint)
	p.ok("NetworkDriver.DeleteNetwork", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"}`)

	recs := p.records()
	// The join names the host view it saw; the view is recorded once, before it.
	want := []audit.Event{audit.NetworkCreate, audit.EndpointCreate, audit.HostView, audit.EndpointJoin, audit.EndpointLeave, audit.EndpointDelete, audit.NetworkDelete}
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.Event != want[i] || r.Outcome != audit.OK {
			t.Errorf("record %d = seq %d %s %s, want seq %d %s ok", i, r.Seq, r.Event, r.Outcome, i+1, want[i])
		}
		if r.Event == audit.HostView {
			continue // about the host: no network fields
		}
		if r.NetworkID != "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0" || r.Tag != "payments" || r.Host != "testhost" || r.Driver != "hp" || r.Adopted == nil || *r.Adopted {
			t.Errorf("record %d = %+v, want the network, tag payments, host testhost, driver hp, not adopted", i, r)
		}
		if time.Since(r.Time) > time.Minute || r.Time.Location() != time.UTC {
			t.Errorf("record %d time %v, want now in UTC", i, r.Time)
		}
	}
	if recs[0].IPAMPools[0] != "0.0.0.0/0" || recs[0].Options["com.docker.network.generic"] != nil {
		t.Errorf("create record = %+v, want the pool, and the options as received but the tag, which is in tag alone", recs[0])
	}
	if recs[1].Address != "172.18.0.2/16" {
		t.Errorf("endpoint.create address = %q, want Docker's unused IPAM address", recs[1].Address)
	}
	v, j := recs[2], recs[3]
	if j.EndpointID != "ep1" || j.SandboxKey != "/var/run/docker/netns/abc" || j.HostView == "" || j.HostView != v.HostView || len(v.HostInterfaces) != 1 || v.HostInterfaces[0].Name != "lo" {
		t.Errorf("view record = %+v, join record = %+v, want endpoint, sandbox key and the host view it names", v, j)
	}
}

func TestInternalNetworkDisablesGatewayService(t *testing.T) {
	p := startPlugin(t)
	p.ok("NetworkDriver.CreateNetwork", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","Options":{"com.docker.network.internal":true}}`)
	join := p.ok("NetworkDriver.Join", endpoint)
	if join["DisableGatewayService"] != true {
		t.Errorf("Join = %v, want DisableGatewayService for an --internal network", join)
	}
	if r := p.last(); r.Internal == nil || !*r.Internal {
		t.Errorf("join record %+v, want internal", r)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, method, body string
		code               int
		err                string
		event              audit.Event // audited refusal, if any
	}{
		{"unknown option", "NetworkDriver.CreateNetwork", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","Options":{"com.docker.network.generic":{"tag":"x","mtu":"9000"}}}`,
			400, `unknown network option "mtu"; accepted options: tag`, audit.NetworkCreate},
		{"tag not text", "NetworkDriver.CreateNetwork", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","Options":{"com.docker.network.generic":{"tag":5}}}`,
			400, `network option "tag" must be text, got 5`, audit.NetworkCreate},
		{"no network id", "NetworkDriver.CreateNetwork", `{}`, 400, "CreateNetwork request has no NetworkID", audit.NetworkCreate},
		{"not a docker id", "NetworkDriver.CreateNetwork", `{"NetworkID":"net1"}`, 400,
			`CreateNetwork request names network "net1": Docker's network IDs are 64 lowercase hex digits, or 25 lowercase letters and digits for a swarm-scope network`, audit.NetworkCreate},
		{"bad json", "NetworkDriver.Join", `{"NetworkID":`, 400,
			"malformed NetworkDriver.Join request: unexpected end of JSON input; expected the JSON object of Docker's remote network driver API", audit.EndpointJoin},
		{"wrong type", "NetworkDriver.CreateEndpoint", `{"NetworkID":7}`, 400,
			"malformed NetworkDriver.CreateEndpoint request: json: cannot unmarshal number into Go struct field CreateEndpointRequest.NetworkID of type string", audit.EndpointCreate},
		{"empty body", "NetworkDriver.Leave", ``, 400, "malformed NetworkDriver.Leave request: empty body", audit.EndpointLeave},
		// A body that arrived, too large, is audited: unlike a client that
		// hung up, it is a request someone sent whole.
		{"body too large", "NetworkDriver.Join", `{"NetworkID":"` + strings.Repeat("n", maxBody) + `"}`, 400,
			"malformed NetworkDriver.Join request: http: request body too large", audit.EndpointJoin},
		{"no endpoint id", "NetworkDriver.Join", `{"NetworkID":"n"}`, 400, "Join request has no EndpointID", audit.EndpointJoin},
		{"unknown method", "NetworkDriver.Frobnicate", `{}`, 404, `unknown method "NetworkDriver.Frobnicate"; hostpass serves Plugin.Activate and NetworkDriver.*`, ""},
		{"swarm only", "NetworkDriver.AllocateNetwork", `{"NetworkID":"n"}`, 400, "AllocateNetwork is for swarm-scope drivers; hostpass is local scope", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPlugin(t)
			code, out := p.call(tc.method, tc.body)
			if code != tc.code || !strings.Contains(out["Err"].(string), tc.err) {
				t.Fatalf("got %d %v, want %d with %q", code, out, tc.code, tc.err)
			}
			if tc.event == "" {
				if _, err := os.Stat(p.auditLog); err == nil {
					t.Fatalf("audit log written for a call that changes nothing: %+v", p.records())
				}
				return
			}
			r := p.last()
			if r.Event != tc.event || r.Outcome != audit.Refused || !strings.Contains(r.Error, tc.err) {
				t.Errorf("record = %+v, want refused %s with the error", r, tc.event)
			}
		})
	}
}

func TestUnknownNetworkIsAdoptedAndRemembered(t *testing.T) {
	p := startPlugin(t)
	p.ok("NetworkDriver.CreateEndpoint", endpoint)
	p.ok("NetworkDriver.Join", endpoint)
	for _, r := range p.records() {
		if r.Event != audit.HostView && (r.Adopted == nil || !*r.Adopted || r.Outcome != audit.OK) {
			t.Errorf("record %+v, want ok and adopted", r)
		}
	}
	// An adoption appends to the state instead of rewriting it.
	state, err := os.ReadFile(filepath.Join(p.stateDir, "networks.adopted.jsonl"))
	if err != nil || !strings.Contains(string(state), `"adopted":true`) {
		t.Errorf("state = %s (%v), want the adopted network saved", state, err)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	p := startPlugin(t)
	p.ok("NetworkDriver.CreateNetwork", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","Options":{"com.docker.network.internal":true,"com.docker.network.generic":{"tag":"ops"}}}`)
	p.srv.Close()

	again := newPlugin(t, p.auditLog, p.stateDir)
	join := again.ok("NetworkDriver.Join", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","EndpointID":"ep9"}`)
	r := again.last()
	if join["DisableGatewayService"] != true || r.Tag != "ops" || r.Adopted == nil || *r.Adopted || r.Seq != 3 {
		t.Errorf("after restart: join %v, record %+v; want internal, tag ops, not adopted, seq 3 (after the host view)", join, r)
	}
}

func TestCorruptStateStopsStart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "networks.json"), []byte("{oops"), 0o640)
	_, err := driver.New(driver.Config{StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), "is not valid JSON") || !strings.Contains(err.Error(), "will not overwrite it") {
		t.Fatalf("got %v, want a refusal to start naming the state file", err)
	}
}

func TestUnwritableAuditLogRefusesJoinButNotTeardown(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "log")
	os.WriteFile(blocker, nil, 0o640) // the log's directory is a file
	p := newPlugin(t, filepath.Join(blocker, "audit.jsonl"), filepath.Join(dir, "state"))

	code, out := p.call("NetworkDriver.Join", endpoint)
	msg, _ := out["Err"].(string)
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(msg, "audit log unavailable: ") ||
		!strings.Contains(msg, "not a directory") || !strings.HasSuffix(msg, "refusing endpoint.join so that nothing joins unaudited") {
		t.Fatalf("Join: got %d %q, want 503 naming the audit log, the cause and the refusal", code, msg)
	}
	code, out = p.call("NetworkDriver.CreateNetwork", createTagged)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("CreateNetwork: got %d %v, want 503", code, out)
	}
	p.ok("NetworkDriver.Leave", endpoint)
	p.ok("NetworkDriver.DeleteEndpoint", endpoint)

	os.Remove(blocker)
	p.ok("NetworkDriver.CreateNetwork", createTagged)
	var got []string
	for _, r := range p.records() {
		got = append(got, string(r.Event)+" "+string(r.Outcome))
	}
	want := "endpoint.join refused, network.create refused, endpoint.leave ok, endpoint.delete ok, network.create ok"
	if strings.Join(got, ", ") != want {
		t.Errorf("records = %s\nwant      %s", strings.Join(got, ", "), want)
	}
}

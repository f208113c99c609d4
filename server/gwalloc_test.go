package server

import (
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/hostpass/hostpass/audit"
)

// raw posts body to method and returns the status and the reply as sent.
func (p *plugin) raw(method, body string) (int, string) {
	p.t.Helper()
	resp, err := http.Post(p.srv.URL+"/"+method, "application/json", strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// noAuditLog fails unless the audit log was never written.
func (p *plugin) noAuditLog() {
	p.t.Helper()
	if _, err := os.Stat(p.auditLog); err == nil {
		p.t.Errorf("audit log written for a call that changes nothing: %+v", p.records())
	}
}

// Docker 28 and later read GwAllocChecker from this reply; without it they
// never send GwAllocCheck.
func TestGetCapabilitiesReplyExactly(t *testing.T) {
	p := startPlugin(t)
	// Docker sends no body (its plugin client posts nil args).
	for _, body := range []string{"", "null", "{}"} {
		code, got := p.raw("NetworkDriver.GetCapabilities", body)
		want := `{"Scope":"local","ConnectivityScope":"local","GwAllocChecker":true}`
		if code != http.StatusOK || got != want {
			t.Errorf("GetCapabilities with body %q = %d %s, want 200 %s", body, code, got, want)
		}
	}
	p.noAuditLog()
}

// The bodies are as moby's remote driver sends them (GetSkipGwAlloc posts
// api.GwAllocCheckerRequest{Options: nw.generic} at v28.5.2 and
// v2.0.0-beta.21): the Options CreateNetwork will carry, -o pairs under
// com.docker.network.generic.
func TestGwAllocCheckSkipsBothGateways(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"default", `{"Options":{"com.docker.network.enable_ipv4":true,"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}}}`},
		{"tag and ipv6", `{"Options":{"com.docker.network.enable_ipv4":true,"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{"tag":"payments"}}}`},
		{"internal", `{"Options":{"com.docker.network.enable_ipv4":true,"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{},"com.docker.network.internal":true}}`},
		{"no options", `{"Options":null}`},
		{"empty object", `{}`},
		// An option CreateNetwork refuses is not refused here: the refusal
		// belongs to CreateNetwork, which records it.
		{"option CreateNetwork refuses", `{"Options":{"com.docker.network.generic":{"mtu":"9000"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPlugin(t)
			code, got := p.raw("NetworkDriver.GwAllocCheck", tc.body)
			if want := `{"SkipIPv4":true,"SkipIPv6":true}`; code != http.StatusOK || got != want {
				t.Errorf("GwAllocCheck = %d %s, want 200 %s", code, got, want)
			}
			p.noAuditLog()
		})
	}
}

// A malformed GwAllocCheck is refused with a 400 that names what is
// accepted, and, as a question that changes nothing, leaves no record.
func TestGwAllocCheckRefusesMalformedBodies(t *testing.T) {
	const accepted = "; expected the JSON object of Docker's remote network driver API"
	for _, tc := range []struct{ name, body, err string }{
		{"empty body", ``, "malformed NetworkDriver.GwAllocCheck request: empty body" + accepted},
		{"truncated", `{"Options":`, "malformed NetworkDriver.GwAllocCheck request: unexpected end of JSON input" + accepted},
		{"options not an object", `{"Options":["tag"]}`,
			"malformed NetworkDriver.GwAllocCheck request: json: cannot unmarshal array into Go struct field gwAllocCheckRequest.Options of type map[string]interface {}" + accepted},
		{"not an object", `"skip"`,
			"malformed NetworkDriver.GwAllocCheck request: json: cannot unmarshal string into Go value of type server.gwAllocCheckRequest" + accepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPlugin(t)
			code, out := p.call("NetworkDriver.GwAllocCheck", tc.body)
			if code != http.StatusBadRequest || out["Err"] != tc.err || len(out) != 1 {
				t.Errorf("got %d %v, want 400 with only Err %q", code, out, tc.err)
			}
			p.noAuditLog()
		})
	}
}

// After GwAllocCheck, the CreateNetwork Docker sends is recorded as ever,
// and a refused one too: the check took nothing from the audit trail.
func TestCreateAfterGwAllocCheckIsAudited(t *testing.T) {
	p := startPlugin(t)
	p.ok("NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.generic":{"mtu":"9000"}}}`)
	code, _ := p.call("NetworkDriver.CreateNetwork", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","Options":{"com.docker.network.generic":{"mtu":"9000"}}}`)
	if code != http.StatusBadRequest {
		t.Fatalf("CreateNetwork with -o mtu: status %d, want 400", code)
	}
	p.ok("NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.generic":{"tag":"payments"}}}`)
	p.ok("NetworkDriver.CreateNetwork", createTagged)
	var got []string
	for _, r := range p.records() {
		got = append(got, string(r.Event)+" "+string(r.Outcome))
	}
	if want := []string{string(audit.NetworkCreate) + " refused", string(audit.NetworkCreate) + " ok"}; strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("records = %v, want %v", got, want)
	}
}

// GwAllocCheck cannot refuse: Docker asks it before CreateNetwork, so a
// refusal would fail `docker network create` with no audit record. The
// driver's answer has no error to return, whatever it is given.
func TestGwAllocCheckCannotRefuse(t *testing.T) {
	m, ok := reflect.TypeFor[Driver]().MethodByName("GetSkipGwAlloc")
	if !ok {
		t.Fatal("Driver has no GetSkipGwAlloc")
	}
	var outs []string
	for i := range m.Type.NumOut() {
		outs = append(outs, m.Type.Out(i).String())
	}
	if got := strings.Join(outs, ", "); got != "bool, bool" {
		t.Errorf("GetSkipGwAlloc returns (%s), want (bool, bool): an error there would refuse a network create unaudited", got)
	}
}

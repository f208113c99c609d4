package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
)

// The replies of a create and a join are encoded once, beforehand: each
// must be, byte for byte, what json.Encoder makes of the driver's reply, as
// go-plugins-helpers' handler sends it.
func TestReplyBytes(t *testing.T) {
	p := startPlugin(t)
	const gw = "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	const internal = "6f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	p.ok("NetworkDriver.CreateNetwork", `{"NetworkID":"`+gw+`"}`)
	p.ok("NetworkDriver.CreateNetwork", `{"NetworkID":"`+internal+`","Options":{"com.docker.network.internal":true}}`)
	want := func(v any) string {
		var b bytes.Buffer
		json.NewEncoder(&b).Encode(v)
		return b.String()
	}
	for _, c := range []struct{ method, body, want string }{
		{"CreateEndpoint", `{"NetworkID":"` + gw + `","EndpointID":"ep1"}`, want(&network.CreateEndpointResponse{})},
		{"Join", `{"NetworkID":"` + gw + `","EndpointID":"ep1","SandboxKey":"/var/run/docker/netns/0123456789ab"}`, want(&network.JoinResponse{})},
		{"Join", `{"NetworkID":"` + internal + `","EndpointID":"ep2"}`, want(&network.JoinResponse{DisableGatewayService: true})},
	} {
		resp, err := http.Post(p.srv.URL+"/NetworkDriver."+c.method, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != c.want {
			t.Errorf("%s %s: %d %q, want 200 %q", c.method, c.body, resp.StatusCode, b, c.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.docker.plugins.v1.1+json" {
			t.Errorf("%s: Content-Type %q", c.method, ct)
		}
	}
}

// isHostJoin names network.JoinResponse's fields by hand: a field added
// upstream would pass it unchecked, and the canned reply would drop it.
// This pins the fields it knows, and that each but DisableGatewayService
// makes a reply not a host join.
func TestIsHostJoinKnowsEveryField(t *testing.T) {
	known := []string{"InterfaceName", "Gateway", "GatewayIPv6", "StaticRoutes", "DisableGatewayService"}
	typ := reflect.TypeOf(network.JoinResponse{})
	var fields []string
	for i := range typ.NumField() {
		fields = append(fields, typ.Field(i).Name)
	}
	if !slices.Equal(fields, known) {
		t.Fatalf("network.JoinResponse has fields %q, isHostJoin knows %q: update isHostJoin (server/server.go) to check the new fields, then this list", fields, known)
	}
	for name, res := range map[string]network.JoinResponse{
		"InterfaceName": {InterfaceName: network.InterfaceName{SrcName: "veth0"}},
		"Gateway":       {Gateway: "192.0.2.1"},
		"GatewayIPv6":   {GatewayIPv6: "2001:db8::1"},
		"StaticRoutes":  {StaticRoutes: []*network.StaticRoute{}},
	} {
		if isHostJoin(&res) {
			t.Errorf("a reply with %s set is a host join to isHostJoin, want not", name)
		}
	}
	for _, internal := range []bool{false, true} {
		if !isHostJoin(&network.JoinResponse{DisableGatewayService: internal}) {
			t.Errorf("a reply with only DisableGatewayService=%v is not a host join to isHostJoin", internal)
		}
	}
}

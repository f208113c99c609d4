package driver

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/hostpass/hostpass/audit"
)

// lastLine is the last line of the audit log at path, decoded as JSON.
func lastLine(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// On an --ipv6 network Docker offers CreateEndpoint an address in each
// family (Interface.Address, Interface.AddressIPv6): endpoint.create keeps
// both, as address and address_ipv6. On an IPv4-only network there is no
// address_ipv6 member at all.
func TestEndpointCreateRecordsBothAddresses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		iface  *network.EndpointInterface
		v4, v6 any // the members of the line; nil: absent
	}{
		{"ipv6", &network.EndpointInterface{Address: "172.19.0.2/16", AddressIPv6: "fd00:1::2/64"}, "172.19.0.2/16", "fd00:1::2/64"},
		{"ipv4 only", &network.EndpointInterface{Address: "172.19.0.2/16"}, "172.19.0.2/16", nil},
		{"null ipam", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, logPath := newDriver(t)
			if err := d.CreateNetwork(&network.CreateNetworkRequest{NetworkID: netID(1)}); err != nil {
				t.Fatal(err)
			}
			if _, err := d.CreateEndpoint(&network.CreateEndpointRequest{NetworkID: netID(1), EndpointID: netID(2), Interface: tc.iface}); err != nil {
				t.Fatal(err)
			}
			m := lastLine(t, logPath)
			if m["event"] != string(audit.EndpointCreate) || m["address"] != tc.v4 || m["address_ipv6"] != tc.v6 {
				t.Errorf("endpoint.create has address %v, address_ipv6 %v; want %v, %v:\n%v", m["address"], m["address_ipv6"], tc.v4, tc.v6, m)
			}
		})
	}
}

// A refused CreateEndpoint keeps what Docker offered too, and a hostile
// AddressIPv6 is cut like address, at the first stage (a long string), not
// by dropping the record to its identity fields.
func TestEndpointAddressIPv6IsRecordedWhenRefusedAndCut(t *testing.T) {
	d, logPath := newDriver(t)
	long := strings.Repeat("f", 200<<10)
	_, err := d.CreateEndpoint(&network.CreateEndpointRequest{NetworkID: netID(1), Interface: &network.EndpointInterface{Address: "172.19.0.2/16", AddressIPv6: long}})
	if err == nil || err.Error() != "CreateEndpoint request has no EndpointID" {
		t.Fatalf("got %v, want the refusal of a request without EndpointID", err)
	}
	r := records(t, logPath)[0]
	if r.Outcome != audit.Refused || r.Address != "172.19.0.2/16" || !slices.Equal(r.Truncated, []string{"address_ipv6"}) ||
		r.AddressIPv6 != strings.Repeat("f", 1024)+audit.Cut {
		t.Errorf("refused endpoint.create: outcome %s, address %q, address_ipv6 of %d bytes, truncated %q; want refused, the IPv4 address, address_ipv6 cut to 1024 bytes and the mark, truncated [address_ipv6]",
			r.Outcome, r.Address, len(r.AddressIPv6), r.Truncated)
	}
}

// EndpointInfo shows the address Docker offered an endpoint, which hostpass
// did not use, until the endpoint is deleted; none for an endpoint offered
// none, or whose repeated create offered none, or whose ID or address is
// not of the form Docker sends.
func TestEndpointInfoShowsUnusedAddress(t *testing.T) {
	d, _ := newDriver(t)
	if err := create(d, netID(1), map[string]any{"tag": "web"}); err != nil {
		t.Fatal(err)
	}
	createEP := func(ep string, iface *network.EndpointInterface) {
		t.Helper()
		if _, err := d.CreateEndpoint(&network.CreateEndpointRequest{NetworkID: netID(1), EndpointID: ep, Interface: iface}); err != nil {
			t.Fatal(err)
		}
	}
	info := func(ep string) map[string]string {
		t.Helper()
		res, err := d.EndpointInfo(&network.InfoRequest{NetworkID: netID(1), EndpointID: ep})
		if err != nil {
			t.Fatal(err)
		}
		return res.Value
	}
	check := func(ep string, want map[string]string) {
		t.Helper()
		if got := info(ep); !maps.Equal(got, want) {
			t.Errorf("endpoint %.80s: info %.300s, want %v", ep, fmt.Sprint(got), want) // the junk below is long
		}
	}
	withAddr := map[string]string{"hostpass.driver": "hp", "hostpass.tag": "web", "hostpass.unused_address": "172.19.0.2/16"}
	without := map[string]string{"hostpass.driver": "hp", "hostpass.tag": "web"}

	createEP(netID(2), &network.EndpointInterface{Address: "172.19.0.2/16"})
	createEP(netID(3), nil)
	check(netID(2), withAddr)
	check(netID(3), without)
	if err := d.DeleteEndpoint(&network.DeleteEndpointRequest{NetworkID: netID(1), EndpointID: netID(2)}); err != nil {
		t.Fatal(err)
	}
	check(netID(2), without)
	createEP(netID(4), &network.EndpointInterface{Address: "172.19.0.2/16"})
	createEP(netID(4), &network.EndpointInterface{})
	check(netID(4), without)

	// What a client other than Docker may send is not kept: hostpass would
	// hold a request body's worth of text an endpoint.
	junk := strings.Repeat("x", 900_000)
	createEP(netID(5), &network.EndpointInterface{Address: junk})
	check(netID(5), without)
	createEP(junk, &network.EndpointInterface{Address: "172.19.0.3/16"})
	check(junk, without)
	d.mu.Lock()
	kept := len(d.unusedAddress)
	d.mu.Unlock()
	if kept != 0 {
		t.Errorf("%d endpoints kept, want none", kept)
	}
	// Kept by the 32 bytes the ID spells: an ID of another form is not the
	// all-zero one.
	createEP(netID(0), &network.EndpointInterface{Address: "172.19.0.4/16"})
	check(netID(0), map[string]string{"hostpass.driver": "hp", "hostpass.tag": "web", "hostpass.unused_address": "172.19.0.4/16"})
	check(junk, without)
	check(strings.ToUpper(netID(10)), without)
	createEP(netID(10), &network.EndpointInterface{Address: "172.19.0.5/16"})
	check(strings.ToUpper(netID(10)), without)
}

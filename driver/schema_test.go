package driver

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/audit/schematest"
)

// Every kind the driver writes, served and refused, validates against
// docs/audit.schema.json as the log wrote it.
func TestRecordsValidateAgainstTheSchema(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	a := audit.Open(path, nil)
	defer a.Close()
	log := logrus.New()
	log.SetOutput(io.Discard)
	links := func() []audit.Interface {
		return []audit.Interface{{Name: "lo", Index: 1, MTU: 65536, Up: true, Addrs: []string{"127.0.0.1/8"}}}
	}
	d, err := New(Config{Name: "hp", Hostname: "h", StateDir: filepath.Join(dir, "state"), Audit: a, HostInterfaces: links, Log: logrus.NewEntry(log)})
	if err != nil {
		t.Fatal(err)
	}
	net, ep := netID(1), netID(2)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.CreateNetwork(&network.CreateNetworkRequest{NetworkID: net, Options: map[string]any{genericOptions: map[string]any{"tag": "web"}},
		IPv4Data: []*network.IPAMData{{Pool: "0.0.0.0/0"}}}))
	_, err = d.CreateEndpoint(&network.CreateEndpointRequest{NetworkID: net, EndpointID: ep, Interface: &network.EndpointInterface{Address: "10.0.0.2/24", AddressIPv6: "fd00:1::2/64"}})
	must(err)
	netns := filepath.Join(dir, "netns") // Docker's, before the namespace is bound: "sandbox":"absent"
	must(os.Mkdir(netns, 0o755))
	_, err = d.Join(&network.JoinRequest{NetworkID: net, EndpointID: ep, SandboxKey: filepath.Join(netns, "0123456789ab")})
	must(err)
	must(d.Leave(&network.LeaveRequest{NetworkID: net, EndpointID: ep}))
	must(d.DeleteEndpoint(&network.DeleteEndpointRequest{NetworkID: net, EndpointID: ep}))
	must(d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: net}))
	// Refusals: a bad option, and a request too malformed to name a network.
	if d.CreateNetwork(&network.CreateNetworkRequest{NetworkID: netID(3), Options: map[string]any{genericOptions: map[string]any{"mtu": "1"}}}) == nil {
		t.Fatal("an unknown option was accepted")
	}
	d.Malformed(audit.EndpointJoin, errors.New("malformed NetworkDriver.Join request: unexpected EOF"))

	seen := schematest.Check(t, schematest.Lines(t, path))
	schematest.Covers(t, seen, audit.DriverEvents)
}

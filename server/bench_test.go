package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/hostpass/hostpass/audit"
)

// BenchmarkCall compares a call that touches no disk (GetCapabilities: the
// baseline, HTTP and JSON only) with the calls that write an fsynced audit
// record. Report the ratio of the two, not the absolute times: this machine
// is noisy.
func BenchmarkCall(b *testing.B) {
	for _, bc := range []struct{ method, body string }{
		{"GetCapabilities", ``},
		{"Join", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","EndpointID":"ep%d","SandboxKey":"/var/run/docker/netns/x"}`},
		{"Leave", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","EndpointID":"ep%d"}`},
	} {
		b.Run(bc.method, func(b *testing.B) {
			p := startPlugin(b)
			url := p.srv.URL + "/NetworkDriver." + bc.method
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				body := bc.body
				if strings.Contains(body, "%d") {
					body = fmt.Sprintf(body, i)
				}
				resp, err := http.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// nothing is a driver whose create and join do nothing, as the no-op
// driver of `hostpass bench --baseline` does.
type nothing struct{ network.Driver }

func (nothing) CreateEndpoint(*network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	return &network.CreateEndpointResponse{}, nil
}
func (nothing) Join(*network.JoinRequest) (*network.JoinResponse, error) {
	return &network.JoinResponse{}, nil
}
func (nothing) Malformed(audit.Event, error)               { panic("malformed") }
func (nothing) GetSkipGwAlloc(map[string]any) (bool, bool) { return true, true }

// BenchmarkHandlerContainer is the server's own cost of a container, a
// CreateEndpoint and a Join, over a driver that does nothing and without
// the connection (net/http's reading and writing): what the handler adds
// to the calls' decoding and reply.
func BenchmarkHandlerContainer(b *testing.B) {
	h := New(nothing{}, quiet())
	const netID = "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	create := `{"NetworkID":"` + netID + `","EndpointID":"%064x","Options":{},"Interface":{"Address":"","AddressIPv6":"","MacAddress":""}}`
	join := `{"NetworkID":"` + netID + `","EndpointID":"%064x","SandboxKey":"/var/run/docker/netns/0123456789ab","Options":{}}`
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for _, c := range []struct{ path, body string }{{"/NetworkDriver.CreateEndpoint", create}, {"/NetworkDriver.Join", join}} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(fmt.Sprintf(c.body, i))))
			if w.Code != http.StatusOK {
				b.Fatalf("%s: %d %s", c.path, w.Code, w.Body)
			}
		}
	}
}

package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
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

package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostpass/hostpass/metrics"
)

// TestRunServesMetrics: with Metrics set, a scrape of the metrics socket
// shows the driver call the test made and its audit record, and the socket
// is gone after stop.
func TestRunServesMetrics(t *testing.T) {
	cfg := testConfig(t)
	withLog(&cfg)
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	cfg.Metrics, cfg.MetricsNetwork, cfg.MetricsAddress = metrics.New("test", "abc"), "unix", sock
	r := start(t, cfg)
	createNetwork(t, cfg.Socket)

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var body string
	eventually(t, "the metrics socket to answer", func() bool {
		res, err := client.Get("http://hostpass/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body = string(b)
		return res.StatusCode == http.StatusOK
	})
	for _, want := range []string{
		`hostpass_driver_requests_total{method="NetworkDriver.CreateNetwork",result="ok"} 1`,
		`hostpass_audit_records_total{event="network.create"} 1`,
		`hostpass_build_info{commit="abc"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("metrics socket still there after stop: %v", err)
	}
}

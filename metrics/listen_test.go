package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeOnUnixSocket: a scrape over the unix socket, as Prometheus's
// unix-socket-capable proxies or curl --unix-socket make it, gets /metrics.
func TestServeOnUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "metrics.sock")
	network, address, err := ParseAddr("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: New("v", "c").Mux()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != SocketMode {
		t.Errorf("socket mode: %v, %v; want %o", fi.Mode().Perm(), err, SocketMode)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	res, err := client.Get("http://hostpass/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `hostpass_build_info{commit="c"`) {
		t.Errorf("scrape over the socket lacks hostpass_build_info:\n%s", body)
	}
	// A second daemon on the same path is refused while the first serves.
	if _, err := Listen(network, address); err == nil || !strings.Contains(err.Error(), "another process serves on it") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	l, err := Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false) // as a kill -9 leaves it
	l.Close()
	l, err = Listen("unix", sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()
}

func TestListenKeepsOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	os.WriteFile(path, []byte("keep"), 0o600)
	_, err := Listen("unix", path)
	want := "--metrics unix://" + path + ": a file that is not a socket is there; remove it or name another path"
	if err == nil || err.Error() != want {
		t.Errorf("Listen over a regular file: %v\nwant %s", err, want)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Errorf("the file was changed: %q", b)
	}
}

// TestListenRefusesAPortInUse names the flag, the address and what to do.
func TestListenRefusesAPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	_, err = Listen("tcp", addr)
	want := "--metrics tcp://" + addr + ": listen tcp " + addr + ": bind: address already in use; stop what listens there or name another port"
	if err == nil || err.Error() != want {
		t.Errorf("Listen on a busy port: %v\nwant %s", err, want)
	}
}

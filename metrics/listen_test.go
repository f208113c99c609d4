package metrics

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hostpass/hostpass/unixsock"
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
	if _, err := Listen(network, address); err == nil || !strings.Contains(err.Error(), "is in use by a running daemon") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	l, err := Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*removing).Listener.Close() // the socket stays, as a kill -9 leaves it
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
	want := "--metrics unix://" + path + " exists and is a regular file, not a socket; hostpass removes only a socket left by a daemon that died: move the file away or choose another --metrics path"
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

// TestSocketArrivesWithItsMode: the socket is never bound at its path,
// where it would have the umask's mode until a chmod and anyone could
// connect meanwhile: inotify sees it renamed into place (IN_MOVED_TO), made
// elsewhere with its mode, never created there (IN_CREATE).
func TestSocketArrivesWithItsMode(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "metrics.sock")
	l, err := Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	buf := make([]byte, 64*1024)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	var how []string
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
		off += unix.SizeofInotifyEvent + int(ev.Len)
		if name != "metrics.sock" {
			continue
		}
		switch {
		case ev.Mask&unix.IN_CREATE != 0:
			how = append(how, "created")
		case ev.Mask&unix.IN_MOVED_TO != 0:
			how = append(how, "moved")
		}
	}
	if strings.Join(how, ",") != "moved" {
		t.Errorf("metrics.sock arrived at its path: %v; want moved (renamed into place with its mode) only", how)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != SocketMode {
		t.Errorf("socket: %v, %v; want mode %o", fi, err, SocketMode)
	}
}

// TestCloseRemovesTheSocket: the socket goes with the listener, as with the
// daemon.
func TestCloseRemovesTheSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	l, err := Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close() // again: harmless
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket after Close: %v", err)
	}
}

// TestListenAtThePathLimit: a socket path of the 107 bytes ParseAddr
// allows listens, though its private directory makes the bound path longer.
func TestListenAtThePathLimit(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, strings.Repeat("m", unixsock.MaxPath-len(dir)-1))
	if len(sock) != unixsock.MaxPath {
		t.Fatalf("test path is %d bytes, want %d", len(sock), unixsock.MaxPath)
	}
	if _, _, err := ParseAddr("unix://" + sock); err != nil {
		t.Fatal(err)
	}
	l, err := Listen("unix", sock)
	if err != nil {
		t.Fatalf("Listen(%d-byte path): %v", len(sock), err)
	}
	defer l.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestIdleConnectionsDoNotStarveAScrape: a client holding MaxConns idle
// keep-alive connections keeps a scrape out only until the server closes
// them, IdleTimeout later; the plugin socket's server would hold them for
// two minutes. A 17th connection is not served while the 16 are open.
func TestIdleConnectionsDoNotStarveAScrape(t *testing.T) {
	defer func(d time.Duration) { IdleTimeout = d }(IdleTimeout)
	IdleTimeout = 300 * time.Millisecond
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	l, err := Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := New("v", "c").Server(nil)
	go Serve(srv, l)
	t.Cleanup(func() { srv.Close() })
	for range MaxConns {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// One request each, answered 404, then idle: the connection stays.
		fmt.Fprintf(c, "GET /nothing HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Beyond the cap, while the idle ones are still within IdleTimeout,
	// a scrape waits.
	probe, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(probe, "GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n")
	probe.SetReadDeadline(time.Now().Add(IdleTimeout / 3))
	if _, err := probe.Read(make([]byte, 1)); err == nil {
		t.Errorf("a connection beyond the %d idle ones was served at once; want it held by the cap", MaxConns)
	}
	// Then the idle ones are closed and the scrape is answered: well
	// within the client's 30 s, which only bounds a hang.
	probe.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(probe), nil)
	if err != nil {
		t.Fatalf("scrape behind %d idle connections: %v", MaxConns, err)
	}
	res.Body.Close()
	probe.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("scrape behind idle connections: %d", res.StatusCode)
	}
}

// TestListenRefusesADirectoryOthersMayWrite: a socket in a folder another
// user may write (here 0777, sticky like /tmp) could be replaced by theirs:
// refused, naming the folder, its owner and mode; nothing is made there.
func TestListenRefusesADirectoryOthersMayWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "metrics.sock")
	_, err := Listen("unix", sock)
	want := fmt.Sprintf("--metrics unix://%s: its directory %s is owned by uid %d with mode dtrwxrwxrwx; a socket's directory must be owned by uid %d (this daemon's user) and not writable by group or others, or another user could replace the socket: chown or chmod it, or choose a path in another directory",
		sock, dir, os.Geteuid(), os.Geteuid())
	if err == nil || err.Error() != want {
		t.Fatalf("Listen in a 1777 folder: %v\nwant %s", err, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("made %v in the refused folder", entries)
	}
}

package metrics

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hostpass/hostpass/unixsock"
)

// SocketMode is the metrics socket's mode: root and its group, as the
// plugin socket.
const SocketMode = 0o660

// Mux serves the metrics on /metrics, where Prometheus looks by default.
func (m *Metrics) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	return mux
}

// Listen listens on what ParseAddr returned. A unix socket's directory is
// made if missing, and a socket left by a killed daemon is replaced; one a
// live process answers on is not, nor anything that is not a socket. The
// socket has SocketMode from its first moment (package unixsock), and goes
// when the listener is closed.
func Listen(network, address string) (net.Listener, error) {
	if network != "unix" {
		l, err := net.Listen(network, address)
		if err != nil {
			return nil, fmt.Errorf("--metrics tcp://%s: %w; stop what listens there or name another port", address, err)
		}
		return l, nil
	}
	if err := os.MkdirAll(filepath.Dir(address), 0o755); err != nil {
		return nil, fmt.Errorf("--metrics unix://%s: making its directory: %w", address, err)
	}
	if fi, err := os.Lstat(address); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("--metrics unix://%s: a file that is not a socket is there; remove it or name another path", address)
		}
		if c, err := net.DialTimeout("unix", address, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("--metrics unix://%s: another process serves on it; stop it or name another path", address)
		}
		if err := os.Remove(address); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--metrics unix://%s: removing a stale socket: %w", address, err)
		}
	}
	l, err := unixsock.Listen(address, SocketMode)
	if err != nil {
		return nil, fmt.Errorf("--metrics unix://%s: %w", address, err)
	}
	return &removing{Listener: l, path: address}, nil
}

// removing removes its socket file on the first Close: unixsock's listener
// does not, as the file was renamed into place.
type removing struct {
	net.Listener
	path string
	once sync.Once
}

func (r *removing) Close() error {
	err := r.Listener.Close()
	r.once.Do(func() { os.Remove(r.path) })
	return err
}

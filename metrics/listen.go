package metrics

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/hostpass/hostpass/unixsock"
)

// SocketMode is the metrics socket's mode: root and its group (gid 0), as
// the plugin socket.
const SocketMode = 0o660

// The metrics server's own limits, much tighter than the plugin socket's:
// one Prometheus scrapes over one connection every few seconds, so a client
// holding connections open is the only one that needs many, and must not
// keep a scrape out.
const (
	// MaxConns caps the connections served at once; beyond it a
	// connection waits in the backlog until one closes.
	MaxConns = 16
	// headerTimeout and writeTimeout free a slot a stalled client holds.
	headerTimeout = 5 * time.Second
	writeTimeout  = 10 * time.Second
)

// IdleTimeout closes a keep-alive connection idle that long, so that
// MaxConns idle ones hold a scrape back at most that long. Prometheus's
// shortest usual interval (5 s) keeps its own connection alive. A variable
// only so that a test need not wait 10 s.
var IdleTimeout = 10 * time.Second

// Mux serves the metrics on /metrics, where Prometheus looks by default.
func (m *Metrics) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	return mux
}

// Server is the metrics' HTTP server, with the limits above; errorLog
// takes what net/http reports.
func (m *Metrics) Server(errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           m.Mux(),
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       headerTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          errorLog,
	}
}

// Serve serves srv on l, at most MaxConns connections at a time.
func Serve(srv *http.Server, l net.Listener) error {
	return srv.Serve(netutil.LimitListener(l, MaxConns))
}

// Listen listens on what ParseAddr returned. A unix socket's directory is
// made if missing and must be this user's alone (unixsock.CheckDir); a
// socket left by a killed daemon is replaced; one a live process answers
// on is not, nor anything that is not a socket. The socket has SocketMode
// from its first moment (package unixsock), and goes when the listener is
// closed.
func Listen(network, address string) (net.Listener, error) {
	if network != "unix" {
		l, err := net.Listen(network, address)
		if err != nil {
			return nil, fmt.Errorf("--metrics tcp://%s: %w; stop what listens there or name another port", address, err)
		}
		return l, nil
	}
	name := "--metrics unix://" + address
	if err := unixsock.Prepare(address, name, "another --metrics path"); err != nil {
		return nil, err
	}
	l, err := unixsock.Listen(address, SocketMode)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &removing{Listener: l, path: address}, nil
}

// InUse tells whether Listen's error is an address another process holds
// now (a TCP port in use, a live socket at the path): that may end, and is
// worth trying again. Any other refusal (a folder another user may write,
// a file that is not a socket, a directory that cannot be made) stays
// until someone fixes it.
func InUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, unixsock.ErrInUse)
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

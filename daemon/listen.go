package daemon

import (
	"fmt"
	"net"

	"github.com/hostpass/hostpass/unixsock"
)

// SocketMode is the plugin socket's mode: only root and Docker need it.
const SocketMode = 0o660

// Listen opens the plugin socket at path, with SocketMode from its first
// moment, in a directory only this user may change (see package unixsock).
//
// A socket left at path by a killed daemon is replaced; one a live daemon
// answers on is not, and neither is anything that is not a socket: that is
// some other program's file, and is never removed. The listener does not
// remove the socket when closed: Run removes it at path.
func Listen(path string) (net.Listener, error) {
	if err := checkSocket(path); err != nil {
		return nil, err
	}
	l, err := unixsock.Listen(path, SocketMode)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	return l, nil
}

// checkSocket makes the socket's directory if missing, refuses one another
// user may change, and removes a stale socket at path: what Listen does
// before it binds. Run calls it before it opens the audit log too, so a
// refused socket leaves no records behind.
func checkSocket(path string) error {
	name := "--socket " + path
	if err := unixsock.Prepare(path, name, "another --socket"); err != nil {
		return err
	}
	if len(path) > unixsock.MaxPath {
		return fmt.Errorf("%s is %d bytes long; a unix socket's path holds at most %d", name, len(path), unixsock.MaxPath)
	}
	return nil
}

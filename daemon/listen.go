package daemon

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hostpass/hostpass/unixsock"
)

// SocketMode is the plugin socket's mode: only root and Docker need it.
const SocketMode = 0o660

// Listen opens the plugin socket at path, with SocketMode from its first
// moment (see package unixsock).
//
// A socket left at path by a killed daemon is replaced; one a live daemon
// answers on is not, and neither is anything that is not a socket: that is
// some other program's file, and is never removed. The listener does not
// remove the socket when closed: Run removes it at path.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--socket %s: making its directory: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("--socket %s is %d bytes long; a unix socket's path holds at most %d", path, len(path), maxSocketPath)
	}
	l, err := unixsock.Listen(path, SocketMode)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	return l, nil
}

// maxSocketPath is the longest path a unix socket address holds on Linux
// (sun_path is 108 bytes, with its terminating NUL).
const maxSocketPath = 107

// removeStale removes a dead socket at path, and refuses a live one or any
// other kind of file.
func removeStale(path string) error {
	st, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--socket %s: %w", path, err)
	}
	if st.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("--socket %s exists and is %s, not a socket; hostpass removes only a socket left by a daemon that died: move the file away or choose another --socket", path, kind(st.Mode()))
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("--socket %s is in use by a running daemon; stop it first or choose another --socket", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("--socket %s: removing the stale socket left there: %w", path, err)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeNamedPipe:
		return "a named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return "not a regular file"
}

// Package unixsock listens on a unix socket that has its mode from its
// first moment: the plugin socket and the metrics socket, which only root
// and its group may connect to.
package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxPath is the longest path a unix socket address holds on Linux
// (sun_path is 108 bytes, with its terminating NUL).
const maxPath = 107

// Listen listens on a new socket at path with mode. path must not exist.
//
// The socket is made in a private directory (mode 0700) beside path, given
// its mode there, and renamed into place: bound at path, it would have the
// umask's mode until a chmod, and anyone could connect meanwhile. Setting
// the umask instead would also close the window, but the umask is the whole
// process's: other goroutines create files and directories meanwhile, and
// would get the socket's mode.
//
// The listener does not remove the socket when closed: the file moved, so
// the caller removes path. Errors say which step failed, for the caller to
// prefix with its flag and path.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	private, err := os.MkdirTemp(filepath.Dir(path), ".hp")
	if err != nil {
		return nil, fmt.Errorf("making a private directory beside it: %w", err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	l, err := listenAt(private, tmp)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false) // the file moves
	if err := os.Chmod(tmp, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting its mode: %w", err)
	}
	// RENAME_NOREPLACE: a file that appeared at path since the caller
	// looked is left alone.
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE); err != nil {
		l.Close()
		return nil, fmt.Errorf("placing the socket: %w", err)
	}
	return l, nil
}

// listenAt listens on tmp, a socket path inside the directory private. The
// private directory makes the path longer than the one it stands for;
// where that passes the limit, the socket is bound through the directory's
// file descriptor (/proc/self/fd/N/s), whose path is short whatever the
// directory's.
func listenAt(private, tmp string) (net.Listener, error) {
	if len(tmp) <= maxPath {
		return net.Listen("unix", tmp)
	}
	d, err := os.Open(private)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return net.Listen("unix", fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(tmp)))
}

package daemon

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// SocketMode is the plugin socket's mode: only root and Docker need it.
const SocketMode = 0o660

// Listen opens the plugin socket at path, with SocketMode from its first
// moment.
//
// The socket is made in a private directory (mode 0700) beside path, given
// its mode there, and renamed into place. Setting the umask instead would
// also close the window, but the umask is the whole process's: the watcher,
// the host view and the audit log create files and directories from other
// goroutines meanwhile, and would get the socket's mode.
//
// A socket left at path by a killed daemon is replaced; one a live daemon
// answers on is not, and neither is anything that is not a socket: that is
// some other program's file, and is never removed.
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
	private, err := os.MkdirTemp(dir, ".hp")
	if err != nil {
		return nil, fmt.Errorf("--socket %s: making a private directory beside it: %w", path, err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	l, err := listenAt(private, tmp)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // the file moves; Run removes it at path
	if err := os.Chmod(tmp, SocketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("--socket %s: setting its mode: %w", path, err)
	}
	// RENAME_NOREPLACE: a file that appeared at path since removeStale
	// looked is left alone.
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE); err != nil {
		l.Close()
		return nil, fmt.Errorf("--socket %s: placing the socket: %w", path, err)
	}
	return l, nil
}

// maxSocketPath is the longest path a unix socket address holds on Linux
// (sun_path is 108 bytes, with its terminating NUL).
const maxSocketPath = 107

// listenAt listens on tmp, a socket path inside the directory private. The
// private directory makes the path longer than the --socket it stands for;
// where that passes the limit, the socket is bound through the directory's
// file descriptor (/proc/self/fd/N/s), whose path is short whatever the
// directory's.
func listenAt(private, tmp string) (net.Listener, error) {
	if len(tmp) <= maxSocketPath {
		return net.Listen("unix", tmp)
	}
	d, err := os.Open(private)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return net.Listen("unix", fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(tmp)))
}

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

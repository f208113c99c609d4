// Package unixsock listens on a unix socket that has its mode from its
// first moment: the plugin socket and the metrics socket, which only root
// and its group may connect to.
package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MaxPath is the longest path a unix socket address holds on Linux
// (sun_path is 108 bytes, with its terminating NUL).
const MaxPath = 107

// CheckDir refuses a socket's directory that another user could change:
// one not owned by this process's effective user, or writable by its group
// or others. Whoever may write the directory may remove the socket and put
// their own in its place, and Docker or a scraper would talk to theirs.
// (A sticky /tmp would stop the removal, but not a squat before the daemon
// starts: the rule stays simple.) Each folder above it up to / must be
// owned by root or this user and not writable by group or others unless
// sticky (as /tmp): whoever may rename a folder on the way may put a tree
// of their own there. name is how errors name the socket.
func CheckDir(dir, name string) error {
	uid, mode, err := owner(dir, name)
	if err != nil {
		return err
	}
	euid := os.Geteuid()
	if uid != euid || mode.Perm()&0o022 != 0 {
		return fmt.Errorf("%s: its directory %s is owned by uid %d with mode %s; a socket's directory must be owned by uid %d (this daemon's user) and not writable by group or others, or another user could replace the socket: chown or chmod it, or choose a path in another directory",
			name, dir, uid, mode, euid)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("%s: its directory: %w", name, err)
	}
	for up := filepath.Dir(abs); ; up = filepath.Dir(up) {
		uid, mode, err := owner(up, name)
		if err != nil {
			return err
		}
		if (uid != 0 && uid != euid) || (mode.Perm()&0o022 != 0 && mode&fs.ModeSticky == 0) {
			return fmt.Errorf("%s: the folder %s above its directory is owned by uid %d with mode %s; each folder above a socket's must be owned by root or uid %d (this daemon's user) and not writable by group or others unless sticky (as /tmp), or another user could move it and put their own in its place: chown or chmod it, or choose a path elsewhere",
				name, up, uid, mode, euid)
		}
		if up == "/" {
			return nil
		}
	}
}

// owner is dir's owner and mode, following a symbolic link as the socket's
// path will.
func owner(dir, name string) (int, fs.FileMode, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: its directory: %w", name, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("%s: its directory %s has no owner to check", name, dir)
	}
	return int(st.Uid), fi.Mode(), nil
}

// Prepare readies path for Listen: it makes the socket's directory if
// missing (0755), refuses one another user may change (CheckDir), and
// removes a stale socket there (RemoveStale). name and instead are as
// RemoveStale's.
func Prepare(path, name, instead string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s: making its directory: %w", name, err)
	}
	if err := CheckDir(dir, name); err != nil {
		return err
	}
	return RemoveStale(path, name, instead)
}

// ErrInUse is what RemoveStale's error wraps when a live process answers
// on the socket: that may end, unlike the other refusals.
var ErrInUse = errors.New("in use by a running daemon")

// RemoveStale removes a dead socket at path (one a killed process left),
// and refuses a live one or any other kind of file: that is some other
// program's, and is never removed. name is how errors name the socket
// ("--socket /run/x.sock"); instead what to choose instead ("another
// --socket").
func RemoveStale(path, name, instead string) error {
	st, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if st.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is %s, not a socket; hostpass removes only a socket left by a daemon that died: move the file away or choose %s", name, kind(st.Mode()), instead)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s is %w; stop it first or choose %s", name, ErrInUse, instead)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("%s: removing the stale socket left there: %w", name, err)
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
	if len(tmp) <= MaxPath {
		return net.Listen("unix", tmp)
	}
	d, err := os.Open(private)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return net.Listen("unix", fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(tmp)))
}

package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hostpass/hostpass/unixsock"
)

func TestListenReplacesStaleSocketButNotALiveOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hp.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // what a killed daemon leaves behind
	if _, err := os.Stat(path); err != nil {
		t.Fatal("want a stale socket file")
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Close()
	if c, err := net.Dial("unix", path); err != nil {
		t.Fatalf("the new socket does not accept connections: %v", err)
	} else {
		c.Close()
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "is in use by a running daemon") {
		t.Fatalf("second listen: got %v, want a refusal naming the live socket", err)
	}
}

func TestListenNeverRemovesAnotherKindOfFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, kind string
		make       func(t *testing.T, path string) error
	}{
		{"regular file", "a regular file", func(_ *testing.T, p string) error { return os.WriteFile(p, []byte("someone's data"), 0o644) }},
		{"directory", "a directory", func(_ *testing.T, p string) error { return os.Mkdir(p, 0o755) }},
		{"symlink", "a symbolic link", func(_ *testing.T, p string) error { return os.Symlink("/etc/hostname", p) }},
		{"named pipe", "a named pipe", func(_ *testing.T, p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"device", "a device", func(t *testing.T, p string) error {
			if os.Geteuid() != 0 {
				t.Skip("making a device node needs root (mknod); run as root to cover a device at --socket")
			}
			return unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) // as /dev/null
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".sock")
			if err := tc.make(t, path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(path)
			l, err := Listen(path)
			if err == nil {
				l.Close()
				t.Fatalf("Listen over %s succeeded; want a refusal", tc.kind)
			}
			want := "--socket " + path + " exists and is " + tc.kind + ", not a socket; hostpass removes only a socket left by a daemon that died: move the file away or choose another --socket"
			if err.Error() != want {
				t.Errorf("error %q\nwant %q", err, want)
			}
			after, err := os.Lstat(path)
			if err != nil || after.Mode() != before.Mode() || after.Size() != before.Size() {
				t.Errorf("%s at --socket changed: %v %v", tc.kind, after, err)
			}
		})
	}
	// Nothing is left behind beside the socket's place.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".hostpass-listen-") {
			t.Errorf("private directory %s left behind", e.Name())
		}
	}
}

func TestListenSocketMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hp.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != SocketMode {
		t.Errorf("socket mode %s; want a socket with %o", st.Mode(), SocketMode)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries; want the socket alone", len(entries))
	}
}

// A --socket whose private directory makes the bound path pass the 107
// bytes of a unix socket address still listens, at path.
func TestListenNearThePathLimit(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("d", unixsock.MaxPath-len(dir)-len("//hp.sock")-1))
	path := filepath.Join(long, "hp.sock")
	if len(path) != unixsock.MaxPath-1 {
		t.Fatalf("test path is %d bytes, want %d", len(path), unixsock.MaxPath-1)
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen(%d-byte path): %v", len(path), err)
	}
	defer l.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.Close()
	if _, err := Listen(path + strings.Repeat("x", 10)); err == nil || !strings.Contains(err.Error(), "a unix socket's path holds at most 107") {
		t.Errorf("Listen(too long) = %v, want the limit named", err)
	}
}

// A --socket in a directory hostpass may not write: refused, naming the
// socket, the directory and why. A normal user meets a 0555 directory
// (EACCES); root writes there anyway, so as root (as CI runs) the directory
// is a read-only tmpfs, which no one may write (EROFS).
func TestListenInADirectoryItCannotWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	readOnly := func() {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	errno := syscall.EACCES
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
			t.Fatalf("as root this test needs a read-only tmpfs at %s: %v", dir, err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("unmounting the tmpfs at %s: %v", dir, err)
			}
		})
		readOnly, errno = func() {
			if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				t.Fatalf("making the tmpfs at %s read-only: %v", dir, err)
			}
		}, syscall.EROFS
	} else {
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	readOnly()

	path := filepath.Join(dir, "hp.sock")
	closeIfListening := func(l net.Listener, err error) error {
		if err == nil {
			l.Close()
		}
		return err
	}
	err = closeIfListening(Listen(path))
	if prefix := "--socket " + path + ": making a private directory beside it: mkdir " + dir + "/.hp"; err == nil || !errors.Is(err, errno) ||
		!strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), ": "+errno.Error()) {
		t.Errorf("Listen(%s) = %v; want %s…: %v", path, err, prefix, errno)
	}
	err = closeIfListening(Listen(stale))
	if want := "--socket " + stale + ": removing the stale socket left there: remove " + stale + ": " + errno.Error(); err == nil || !errors.Is(err, errno) || err.Error() != want {
		t.Errorf("Listen over a stale socket it cannot remove = %v; want %q", err, want)
	}
	if _, err := os.Lstat(stale); err != nil {
		t.Errorf("the stale socket: %v", err)
	}
}

// TestListenRefusesADirectoryOthersMayWrite: a plugin socket in a folder
// anyone may write (1777, as /tmp) could be removed and replaced by another
// user's before Docker connects: refused, naming the folder, its owner and
// mode, and the rule; nothing is made there. (`serve --socket /tmp/x.sock`
// is refused so.)
func TestListenRefusesADirectoryOthersMayWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hp.sock")
	l, err := Listen(path)
	if err == nil {
		l.Close()
	}
	want := "--socket " + path + ": its directory " + dir + " is owned by uid " + strconv.Itoa(os.Geteuid()) + " with mode dtrwxrwxrwx; a socket's directory must be owned by uid " + strconv.Itoa(os.Geteuid()) + " (this daemon's user) and not writable by group or others, or another user could replace the socket: chown or chmod it, or choose a path in another directory"
	if err == nil || err.Error() != want {
		t.Fatalf("Listen in a 1777 folder: %v\nwant %s", err, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("made %v in the refused folder", entries)
	}
}

package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckDir: a directory this user owns and no one else may write is
// accepted; one writable by group or others (sticky or not), or owned by
// another user, is refused, naming it, its owner and mode, and the rule.
func TestCheckDir(t *testing.T) {
	base := t.TempDir()
	euid := os.Geteuid()
	for _, tc := range []struct {
		mode  os.FileMode
		owner int // -1: this user
		ok    bool
	}{
		{0o700, -1, true},
		{0o755, -1, true},
		{0o775, -1, false},
		{0o777, -1, false},
		{0o777 | os.ModeSticky, -1, false},
		{0o755, 65534, false},
	} {
		t.Run(fmt.Sprintf("%v-uid%d", tc.mode, tc.owner), func(t *testing.T) {
			if tc.owner >= 0 && euid != 0 {
				t.Skip("giving a directory to another user needs root (chown); run as root to cover it")
			}
			dir := filepath.Join(base, strings.NewReplacer("-", "", "|", "").Replace(fmt.Sprintf("%o-%d", tc.mode, tc.owner)))
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			uid := euid
			if tc.owner >= 0 {
				uid = tc.owner
				if err := os.Chown(dir, uid, -1); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckDir(dir, "--socket "+dir+"/x.sock")
			if tc.ok {
				if err != nil {
					t.Fatalf("CheckDir: %v; want it accepted", err)
				}
				return
			}
			fi, _ := os.Stat(dir)
			want := fmt.Sprintf("--socket %s/x.sock: its directory %s is owned by uid %d with mode %s; a socket's directory must be owned by uid %d (this daemon's user) and not writable by group or others, or another user could replace the socket: chown or chmod it, or choose a path in another directory",
				dir, dir, uid, fi.Mode(), euid)
			if err == nil || err.Error() != want {
				t.Fatalf("CheckDir: %v\nwant %s", err, want)
			}
		})
	}
}

// TestRemoveStale: a socket nobody answers on goes; a live one, and a file
// of another kind, stay, refused with what to do.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if err := RemoveStale(stale, "s", "another"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale socket still there: %v", err)
	}
	if err := RemoveStale(stale, "s", "another"); err != nil {
		t.Errorf("RemoveStale on nothing: %v", err)
	}

	live := filepath.Join(dir, "live.sock")
	ll, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	if err := RemoveStale(live, "--x "+live, "another --x"); err == nil || err.Error() != "--x "+live+" is in use by a running daemon; stop it first or choose another --x" {
		t.Errorf("RemoveStale on a live socket: %v", err)
	}

	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o600)
	if err := RemoveStale(file, "--x "+file, "another --x"); err == nil || err.Error() != "--x "+file+" exists and is a regular file, not a socket; hostpass removes only a socket left by a daemon that died: move the file away or choose another --x" {
		t.Errorf("RemoveStale on a file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("the file changed: %q", b)
	}
}

// TestListenAtMaxPath: a MaxPath-byte socket path listens, though its
// private directory makes the path bound first longer.
func TestListenAtMaxPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, strings.Repeat("s", MaxPath-len(dir)-1))
	l, err := Listen(p, 0o660)
	if err != nil {
		t.Fatalf("Listen(%d bytes): %v", len(p), err)
	}
	defer os.Remove(p)
	defer l.Close()
	c, err := net.Dial("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestCheckDirWalksUp: the socket's own folder is this user's alone, but a
// folder above it that anyone may write (not sticky) could be moved aside
// and replaced: refused, naming that folder. Sticky (as /tmp) above the
// socket's own folder is accepted.
func TestCheckDirWalksUp(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	dir := filepath.Join(open, "run")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir, "--socket "+dir+"/x.sock"); err != nil {
		t.Fatalf("CheckDir under a sticky 1777 folder: %v; want it accepted", err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	err := CheckDir(dir, "--socket "+dir+"/x.sock")
	want := fmt.Sprintf("--socket %s/x.sock: the folder %s above its directory is owned by uid %d with mode drwxrwxrwx; each folder above a socket's must be owned by root or uid %d (this daemon's user) and not writable by group or others unless sticky (as /tmp), or another user could move it and put their own in its place: chown or chmod it, or choose a path elsewhere",
		dir, open, os.Geteuid(), os.Geteuid())
	if err == nil || err.Error() != want {
		t.Fatalf("CheckDir under a 0777 folder: %v\nwant %s", err, want)
	}
}

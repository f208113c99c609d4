package driver

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/hostpass/hostpass/audit"
)

// Join gives the container no interface, gateway or route, as the host
// driver does. It cannot put the container into the host's network
// namespace: Docker does that only for --network host. Without
// DisableGatewayService, Docker attaches the container to its gateway bridge
// (docker_gwbridge) for egress; --internal networks get lo only.
func (d *Driver) Join(req *network.JoinRequest) (*network.JoinResponse, error) {
	n, err := d.setup("Join", req.NetworkID, req.EndpointID)
	rec := d.record(audit.EndpointJoin, n)
	rec.NetworkID, rec.EndpointID, rec.SandboxKey, rec.Options = req.NetworkID, req.EndpointID, req.SandboxKey, req.Options
	rec.Sandbox = sandboxState(req.SandboxKey)
	rec.View = d.cfg.HostInterfaces() // the log records it as host.view, named in host_view
	if err != nil {
		return nil, d.refuse(rec, err)
	}
	if err := d.commit(rec); err != nil {
		return nil, err
	}
	return &network.JoinResponse{DisableGatewayService: n.Internal}, nil
}

// sandboxState says what a Join's SandboxKey names now, as hostpass sees it
// (audit.SandboxStates). Docker 28 and later bind the container's network
// namespace there before Join; older engines only as the container starts.
// The key is text from the socket, so hostpass looks only at a path of
// Docker's shape (dockerKey) and only for lookBudget: a key on a hung NFS
// mount or a stalled FUSE filesystem must not hold up Join and its record.
// A key of another shape, or a look that does not answer in time, is
// "unseen". Empty for an empty or relative key: it names nothing here.
//
// Joins in flight together each look (dockerd joins many containers at
// once), up to maxLooks at a time; a look takes microseconds, so a Join
// rarely waits for a free slot, and one that waited its whole budget for a
// slot is "unseen" too. Once a look outlives its budget, later Joins are
// "unseen" at once, without looking, until it returns. A hung mount thus
// holds at most maxLooks goroutines, each on an OS thread in a system call:
// those already looking when it hung.
func sandboxState(key string) string {
	if !filepath.IsAbs(key) {
		return ""
	}
	if !dockerKey(key) || len(lookSlot) > 0 {
		return audit.SandboxUnseen // or a look is stuck: do not start another
	}
	timer := time.NewTimer(lookBudget)
	defer timer.Stop()
	select {
	case looks <- struct{}{}:
	case <-timer.C:
		return audit.SandboxUnseen
	}
	l := &look{answer: make(chan string, 1)} // buffered: a late look does not block
	go func() {
		state := lookSandbox(key)
		<-looks
		if !l.state.CompareAndSwap(looking, answered) {
			<-lookSlot // it was stuck: the next Join looks again
		}
		l.answer <- state
	}()
	select {
	case state := <-l.answer:
		return state
	case <-timer.C:
	}
	select {
	case lookSlot <- struct{}{}: // this look is the stuck one, until it returns
		if !l.state.CompareAndSwap(looking, stuck) {
			<-lookSlot // it answered meanwhile: not stuck after all
		}
	default: // another stuck look holds the slot
	}
	return audit.SandboxUnseen
}

// look is one look at a key, by a goroutine of its own.
type look struct {
	answer chan string
	// state is looking until the look answers or its Join gives up on it,
	// whichever comes first; a look given up on holds lookSlot until it
	// returns.
	state atomic.Int32
}

const (
	looking = iota
	answered
	stuck
)

var (
	// lookSandbox is the look at the file system; tests replace it.
	lookSandbox = lookAtKey
	// lookBudget is how long Join waits for the look.
	lookBudget = 100 * time.Millisecond
	// lookSlot is held by a look that outlived its budget: while one is
	// stuck on a hung mount, later Joins say "unseen" at once instead of
	// starting looks that would hang too. It does not stop the looks
	// already in flight when the mount hung: looks bounds those.
	lookSlot = make(chan struct{}, 1)
	// looks bounds the looks in flight, stuck or not: a hung mount holds
	// at most maxLooks goroutines, each on an OS thread in a system call.
	looks = make(chan struct{}, maxLooks)
)

// maxLooks is the most looks in flight at once, and so the most OS threads
// a hung mount can hold (dockerKey checks the key's shape, not where it
// is: keys such as /fuse/netns/x are looked at). dockerd joins many
// containers at once, but a look takes microseconds: the Joins of a burst
// take turns, each waiting microseconds for a slot. docs/audit.md (sandbox)
// states this bound; the tests hold it to 8.
const maxLooks = 8

// dockerKey reports whether key has the shape of the keys Docker sends,
// EXEC_ROOT/netns/NAME (libnetwork's osl.GenerateKey: NAME is the first 12
// characters of the sandbox's ID): absolute, clean (no "..", ".", "//" or
// trailing "/") and in a folder named netns. Symlinks on the way are
// allowed: the default exec root /var/run/docker is under the symlink
// /var/run on Debian.
func dockerKey(key string) bool {
	dir, name := filepath.Split(key)
	return filepath.IsAbs(key) && filepath.Clean(key) == key && name != "" &&
		filepath.Base(dir) == "netns"
}

// lookAtKey says what is at a key of Docker's shape: a network namespace
// (isNetns does not follow a symlink at the key), or, if nothing, whether
// Docker's exec root is in sight. "absent" needs the key's folder, or,
// before the engine's first namespace made it, the exec root's libnetwork/
// (the set-key socket's folder, there from dockerd's start). A managed
// plugin, in a mount namespace of its own, sees neither: "unseen".
func lookAtKey(key string) string {
	netns, err := isNetns(key)
	switch {
	case err == nil && netns:
		return audit.SandboxLive
	case err == nil:
		return audit.SandboxNotNetns
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(key)
		if isDir(dir) || isDir(filepath.Join(filepath.Dir(dir), "libnetwork")) {
			return audit.SandboxAbsent
		}
	}
	return audit.SandboxUnseen
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// Leave undoes nothing, since Join set nothing up. Never refused.
func (d *Driver) Leave(req *network.LeaveRequest) error {
	n := d.known(req.NetworkID)
	rec := d.record(audit.EndpointLeave, n)
	rec.EndpointID = req.EndpointID
	d.keep(rec)
	return nil
}

// Package hostview keeps a live snapshot of the host's network interfaces:
// what a container with host-mode networking is exposed to. The snapshot is
// fed by netlink link and address notifications, so reading it costs no
// system call on the driver's hot path.
package hostview

import (
	"context"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostpass/hostpass/audit"
)

// Interface is the audit trail's type for a host link; this package fills
// it from netlink.
type Interface = audit.Interface

// View is the cached snapshot.
type View struct {
	log *logrus.Entry

	// mu guards links, keyed by interface index, and snap.
	mu    sync.Mutex
	links map[int]*Interface
	// snap is the last snapshot made, shared by every Snapshot until the
	// links change; nil: made again at the next Snapshot. It never changes
	// once made: it holds copies of the links and their addresses.
	snap []Interface
}

// Start fills the view from a netlink dump and keeps it current until ctx
// ends. It subscribes before dumping, so no change between the two is lost.
func Start(ctx context.Context, log *logrus.Entry) (*View, error) {
	v := &View{log: log, links: map[int]*Interface{}}
	sub, err := v.subscribe(ctx)
	if err != nil {
		return nil, err
	}
	go v.follow(ctx, sub)
	return v, nil
}

// Snapshot returns the host's interfaces, ordered by index. Every Join
// takes one, and the links change far less often than containers join, so
// the snapshot is made once per change and shared: callers must not modify
// it.
func (v *View) Snapshot() []Interface {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.snap != nil {
		return v.snap
	}
	out := make([]Interface, 0, len(v.links))
	for _, l := range v.links {
		if l.Name == "" { // addresses seen before their link
			continue
		}
		c := *l
		c.Addrs = append([]string(nil), l.Addrs...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	v.snap = out
	return out
}

type subscription struct {
	links  chan netlink.LinkUpdate
	addrs  chan netlink.AddrUpdate
	done   chan struct{}
	failed chan error
}

// subscribe opens both notification streams, then replaces the cache with a
// fresh dump. Notifications queued meanwhile are applied after the dump.
func (v *View) subscribe(ctx context.Context) (*subscription, error) {
	s := &subscription{
		links:  make(chan netlink.LinkUpdate, 256),
		addrs:  make(chan netlink.AddrUpdate, 256),
		done:   make(chan struct{}),
		failed: make(chan error, 2),
	}
	onError := func(err error) {
		select {
		case s.failed <- err:
		default:
		}
	}
	if err := netlink.LinkSubscribeWithOptions(s.links, s.done, netlink.LinkSubscribeOptions{ErrorCallback: onError}); err != nil {
		close(s.done)
		return nil, err
	}
	if err := netlink.AddrSubscribeWithOptions(s.addrs, s.done, netlink.AddrSubscribeOptions{ErrorCallback: onError}); err != nil {
		close(s.done)
		return nil, err
	}
	links, err := netlink.LinkList()
	if err != nil {
		close(s.done)
		return nil, err
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		close(s.done)
		return nil, err
	}
	fresh := map[int]*Interface{}
	for _, l := range links {
		i := &Interface{}
		setLink(i, l.Attrs())
		fresh[i.Index] = i
	}
	for _, a := range addrs {
		if i := fresh[a.LinkIndex]; i != nil {
			i.Addrs = append(i.Addrs, a.IPNet.String())
		}
	}
	v.mu.Lock()
	v.links, v.snap = fresh, nil
	v.mu.Unlock()
	return s, nil
}

// follow applies notifications. When a stream breaks (the kernel drops
// notifications when the socket's buffer overflows) it subscribes and dumps
// again, so the view never stays stale.
func (v *View) follow(ctx context.Context, s *subscription) {
	for {
		select {
		case <-ctx.Done():
			close(s.done)
			return
		case u, ok := <-s.links:
			if ok {
				v.applyLink(u)
				continue
			}
		case u, ok := <-s.addrs:
			if ok {
				v.applyAddr(u)
				continue
			}
		case err := <-s.failed:
			v.log.WithError(err).Warn("netlink notifications broke; dumping the host's links again")
		}
		close(s.done)
		for {
			next, err := v.subscribe(ctx)
			if err == nil {
				s = next
				break
			}
			v.log.WithError(err).Error("cannot watch the host's links; retrying")
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

func (v *View) applyLink(u netlink.LinkUpdate) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.snap = nil
	idx := int(u.Index)
	if u.Header.Type == unix.RTM_DELLINK {
		delete(v.links, idx)
		return
	}
	i := v.links[idx]
	if i == nil {
		i = &Interface{}
		v.links[idx] = i
	}
	setLink(i, u.Attrs())
}

func (v *View) applyAddr(u netlink.AddrUpdate) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.snap = nil
	i := v.links[u.LinkIndex]
	if i == nil {
		i = &Interface{Index: u.LinkIndex}
		v.links[u.LinkIndex] = i
	}
	addr := u.LinkAddress.String()
	kept := i.Addrs[:0]
	for _, a := range i.Addrs {
		if a != addr {
			kept = append(kept, a)
		}
	}
	i.Addrs = kept
	if u.NewAddr {
		i.Addrs = append(i.Addrs, addr)
	}
}

func setLink(i *Interface, a *netlink.LinkAttrs) {
	i.Name = a.Name
	i.Index = a.Index
	i.MTU = a.MTU
	i.Up = a.Flags&net.FlagUp != 0
	i.MAC = a.HardwareAddr.String()
}

package hostview

import (
	"context"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// inNewNetns runs the test on a locked OS thread in a fresh network
// namespace, so it can add links without touching the machine's own.
func inNewNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (netns.New) and add a veth pair in it")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("creating a network namespace needs root: %v", err)
	}
	t.Cleanup(func() {
		netns.Set(orig)
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
	})
}

func waitFor(t *testing.T, v *View, what string, ok func([]Interface) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ok(v.Snapshot()) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("view never showed %s; last snapshot %+v", what, v.Snapshot())
}

func find(links []Interface, name string) *Interface {
	for i := range links {
		if links[i].Name == name {
			return &links[i]
		}
	}
	return nil
}

func TestViewFollowsLinkAndAddressChanges(t *testing.T) {
	inNewNetns(t)
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := Start(ctx, logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	if lo := find(v.Snapshot(), "lo"); lo == nil || lo.Up {
		t.Fatalf("initial dump: want lo, down, got %+v", v.Snapshot())
	}

	// A veth pair: the veth module is not loaded on every kernel.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hp0", MTU: 1400}, PeerName: "hp1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	waitFor(t, v, "hp0 with mtu 1400", func(l []Interface) bool { i := find(l, "hp0"); return i != nil && i.MTU == 1400 && i.MAC != "" })

	netlink.LinkSetUp(veth)
	addr, _ := netlink.ParseAddr("198.18.0.1/24")
	netlink.AddrAdd(veth, addr)
	waitFor(t, v, "hp0 up with 198.18.0.1/24", func(l []Interface) bool {
		i := find(l, "hp0")
		return i != nil && i.Up && len(i.Addrs) > 0 && contains(i.Addrs, "198.18.0.1/24")
	})

	netlink.AddrDel(veth, addr)
	waitFor(t, v, "the address gone", func(l []Interface) bool { i := find(l, "hp0"); return i != nil && !contains(i.Addrs, "198.18.0.1/24") })

	netlink.LinkDel(veth)
	waitFor(t, v, "hp0 gone", func(l []Interface) bool { return find(l, "hp0") == nil })
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

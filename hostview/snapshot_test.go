package hostview

import (
	"fmt"
	"net"
	"reflect"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// hostOf is a view of n links, each with an address, as Start would fill
// it, without netlink.
func hostOf(n int) *View {
	v := &View{links: map[int]*Interface{}}
	for i := 1; i <= n; i++ {
		v.links[i] = &Interface{Name: fmt.Sprintf("veth%d", i), Index: i, MTU: 1500, Up: true, MAC: "02:42:ac:11:00:02", Addrs: []string{fmt.Sprintf("198.18.%d.1/24", i%250)}}
	}
	return v
}

// BenchmarkSnapshot is the snapshot every Join takes, on a host of 62 links
// (the host audit/view.go's comment measured), unchanged between Joins.
func BenchmarkSnapshot(b *testing.B) {
	v := hostOf(62)
	b.ReportAllocs()
	for b.Loop() {
		v.Snapshot()
	}
}

// A snapshot is made once per change and shared: each change shows in the
// next one, and never alters one already handed out (a Join's record may
// still be on its way to the log).
func TestSnapshotAfterEachChange(t *testing.T) {
	v := hostOf(2)
	first := v.Snapshot()
	if again := v.Snapshot(); !reflect.DeepEqual(again, first) {
		t.Fatalf("second snapshot %+v, want %+v", again, first)
	}
	want := func(snap []Interface, name string, addrs ...string) {
		t.Helper()
		i := find(snap, name)
		if i == nil || !slices.Equal(i.Addrs, addrs) {
			t.Errorf("%s in snapshot: %+v, want addresses %q", name, i, addrs)
		}
	}

	// An address removed: applyAddr rewrites the link's list in place.
	gone := &net.IPNet{IP: net.IPv4(198, 18, 1, 1).To4(), Mask: net.CIDRMask(24, 32)}
	v.applyAddr(netlink.AddrUpdate{LinkIndex: 1, LinkAddress: *gone})
	added := &net.IPNet{IP: net.IPv4(198, 18, 9, 1).To4(), Mask: net.CIDRMask(24, 32)}
	v.applyAddr(netlink.AddrUpdate{LinkIndex: 1, LinkAddress: *added, NewAddr: true})
	second := v.Snapshot()
	want(second, "veth1", "198.18.9.1/24")
	want(first, "veth1", "198.18.1.1/24")

	// A link renamed, then another removed.
	v.applyLink(netlink.LinkUpdate{IfInfomsg: nl.IfInfomsg{IfInfomsg: unix.IfInfomsg{Index: 2}}, Header: unix.NlMsghdr{Type: unix.RTM_NEWLINK},
		Link: &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Index: 2, MTU: 9000}}})
	third := v.Snapshot()
	if i := find(third, "eth0"); i == nil || i.MTU != 9000 || find(third, "veth2") != nil {
		t.Errorf("after veth2 became eth0: snapshot %+v", third)
	}
	if find(second, "veth2") == nil {
		t.Errorf("an earlier snapshot changed with the link: %+v", second)
	}
	v.applyLink(netlink.LinkUpdate{IfInfomsg: nl.IfInfomsg{IfInfomsg: unix.IfInfomsg{Index: 1}}, Header: unix.NlMsghdr{Type: unix.RTM_DELLINK},
		Link: &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "veth1", Index: 1}}})
	if fourth := v.Snapshot(); len(fourth) != 1 || fourth[0].Name != "eth0" || len(third) != 2 {
		t.Errorf("after veth1 went: snapshot %+v, the one before %+v", fourth, third)
	}
}

package hostview

import (
	"fmt"
	"testing"
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

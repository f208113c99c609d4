package driver

import (
	"slices"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
)

// poolWarning is what hostpass logs for a network whose IPAM hands out
// addresses.
const poolWarning = "network has an IPAM pool, but hostpass hands out no addresses: Docker will show addresses no interface carries; create it with --ipam-driver null"

// warnings collects the warnings d logs from now on, each as its message
// and its pool field.
func warnings(d *Driver) func() [][2]string {
	var mu sync.Mutex
	var got [][2]string
	d.cfg.Log.Logger.AddHook(hookFunc(func(e *logrus.Entry) {
		if e.Level != logrus.WarnLevel {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		pool, _ := e.Data["pool"].(string)
		got = append(got, [2]string{e.Message, pool})
	}))
	return func() [][2]string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// --ipam-driver null sends 0.0.0.0/0, and with --ipv6 on Docker 28 and
// later ::/0 beside it: neither hands out an address, so neither may draw
// the warning that tells the user to do what they did. A pool Docker's
// default IPAM chose, in either family, does draw it. The record keeps the
// pools as Docker sent them.
func TestNullIPAMPoolsDrawNoWarning(t *testing.T) {
	pools := func(ps ...string) []*network.IPAMData {
		var out []*network.IPAMData
		for _, p := range ps {
			out = append(out, &network.IPAMData{Pool: p})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		v4, v6   []*network.IPAMData
		wantPool string // the pool the warning names; "" for no warning
	}{
		{"null", pools("0.0.0.0/0"), nil, ""},
		{"null --ipv6 (28+)", pools("0.0.0.0/0"), pools("::/0"), ""},
		{"default", pools("172.19.0.0/16"), nil, "172.19.0.0/16"},
		{"default --ipv6", pools("172.19.0.0/16"), pools("fd00:1::/64"), "172.19.0.0/16"},
		{"null IPv4, an IPv6 pool", pools("0.0.0.0/0"), pools("fd00:1::/64"), "fd00:1::/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, logPath := newDriver(t)
			warned := warnings(d)
			if err := d.CreateNetwork(&network.CreateNetworkRequest{NetworkID: netID(1), IPv4Data: tc.v4, IPv6Data: tc.v6}); err != nil {
				t.Fatal(err)
			}
			var want [][2]string
			if tc.wantPool != "" {
				want = [][2]string{{poolWarning, tc.wantPool}}
			}
			if got := warned(); !slices.Equal(got, want) {
				t.Errorf("warnings %q, want %q", got, want)
			}
			var wantPools []string
			for _, p := range slices.Concat(tc.v4, tc.v6) {
				wantPools = append(wantPools, p.Pool)
			}
			if r := records(t, logPath)[0]; !slices.Equal(r.IPAMPools, wantPools) {
				t.Errorf("network.create ipam_pools %q, want %q", r.IPAMPools, wantPools)
			}
		})
	}
}

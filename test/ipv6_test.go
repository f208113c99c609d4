//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestIPv6: `docker network create -d hostpass --ipv6`, with null IPAM and
// with default IPAM (an IPv6 --subnet given, and none), what Docker refuses
// and with which words, and what a container on each network gets: its
// addresses, its sysctls, /etc/hosts, what inspect shows, and the audit
// records. hostpass hands out no interface, so whatever IPv6 a container
// has comes from Docker and the kernel, never from the network.
//
// Measured on dockerd 20.10. Where newer engines differ, the expectation
// branches on the engine's API version and cites moby's source.
func TestIPv6(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.start(t)
	eng := probeEngine(t, e)
	t.Logf("%s", eng)

	t.Run("null-ipam", func(t *testing.T) {
		args := []string{"network", "create", "-d", p.name, "--ipv6", "--ipam-driver", "null", "-o", "tag=v6-null", "n6-null"}
		if !eng.atLeast(48) {
			// libnetwork/ipams/null/null.go refuses any IPv6 pool up to
			// 27; 20.10 to 25 say "pool pool" (source v20.10.24, v25.0.0),
			// 26 and 27 "pool" once (source v26.0.0, v27.5.1).
			want := "Error response from daemon: null ipam driver does not handle IPv6 address pool pool requests"
			if eng.atLeast(45) {
				want = "Error response from daemon: null ipam driver does not handle IPv6 address pool requests"
			}
			refused(t, e, p, args, "n6-null", want)
			return
		}
		// 28 and later: the null IPAM driver hands out ::/0 for IPv6 as it
		// does 0.0.0.0/0 for IPv4, with no addresses (moby commit
		// 6fe26e0629, first in v28.0.0; source v28.5.2, v2.0.0-beta.21).
		n := created(t, e, p, eng, args, "v6-null", []string{"0.0.0.0/0", "::/0"})
		n.checkPoolWarning(t, p, "")
		n.checkInspect(t, e, "null", []ipamEntry{{Subnet: "0.0.0.0/0"}, {Subnet: "::/0"}})
		c := runProbe(t, e, p, n, "c6-null")
		c.check(t, eng.containerIPv6(eng.engineIPv6), "", "")
		c.checkHostLo(t, eng.engineIPv6)
		n.remove(t, e, p)
	})

	// A pool of one's own is more than null IPAM does, on every engine
	// (the same words in null.go from v20.10.24 to v2.0.0-beta.21).
	t.Run("null-ipam-subnet", func(t *testing.T) {
		refused(t, e, p, []string{"network", "create", "-d", p.name, "--ipv6", "--ipam-driver", "null", "--subnet", "fd00:2::/64", "n6-null-sub"},
			"n6-null-sub", "Error response from daemon: null ipam driver does not handle specific address pool requests")
	})

	t.Run("default-ipam-subnet", func(t *testing.T) {
		n := created(t, e, p, eng, []string{"network", "create", "-d", p.name, "--ipv6", "--subnet", "fd00:1::/64", "-o", "tag=v6-sub", "n6-sub"}, "v6-sub", nil)
		v4, v6 := n.pools(t, "fd00:1::/64")
		checkDefaultIPAM(t, e, p, eng, n, v4, v6, true)
		n.remove(t, e, p)
	})

	t.Run("default-ipam", func(t *testing.T) {
		args := []string{"network", "create", "-d", p.name, "--ipv6", "-o", "tag=v6-default", "n6-default"}
		if !eng.atLeast(46) {
			// Before 27 the default address pools hold no IPv6 prefix
			// unless the daemon's default-address-pools names one.
			refused(t, e, p, args, "n6-default",
				"Error response from daemon: could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network")
			return
		}
		// 27 and later add a ULA /48 derived from the engine's ID to the
		// default pools, split into /64s (daemon/daemon.go
		// deriveULABaseNetwork, moby commit d18b88fd32, first in v27.0.1;
		// source v28.5.2, v2.0.0-beta.21). This engine has no other IPv6
		// network, so the first /64 is taken.
		want := ulaPool(t, e)
		n := created(t, e, p, eng, args, "v6-default", nil)
		v4, v6 := n.pools(t, want)
		checkDefaultIPAM(t, e, p, eng, n, v4, v6, false)
		n.remove(t, e, p)
	})

	// With IPv6 off in the engine's namespace (its "host"), hostpass's host
	// view loses ::1, and the container gets what the kernel gives a new
	// namespace made from there: 20.10 turns IPv6 off in it anyway.
	t.Run("engine-ipv6-off", func(t *testing.T) {
		setEngineIPv6(t, e, false)
		t.Cleanup(func() { setEngineIPv6(t, e, true) })
		n := created(t, e, p, eng, []string{"network", "create", "-d", p.name, "--ipv6", "--subnet", "fd00:3::/64", "-o", "tag=v6-off", "n6-off"}, "v6-off", nil)
		v4, _ := n.pools(t, "fd00:3::/64")
		lo := eng.containerIPv6(false)
		c := runProbe(t, e, p, n, "c6-off")
		c.checkHostLo(t, false)
		v4addr, v6addr := endpointAddrs(eng, v4, netip.MustParsePrefix("fd00:3::/64"))
		if eng.atLeast(48) && !lo {
			// 28+: a container without IPv6 on lo gets no IPv6 address on
			// an IPv6 network (daemon/network.go, CreateOptionDisableIPv6;
			// source v2.0.0-beta.21).
			v6addr = ""
		}
		c.check(t, lo, v4addr, v6addr)
		n.remove(t, e, p)
	})
}

// engineInfo is what the expectations depend on: the engine's API version
// and the IPv6 state of its namespace and of the kernel.
type engineInfo struct {
	version    string
	apiMinor   int  // Engine API 1.<apiMinor>
	engineIPv6 bool // the engine's namespace has IPv6 on its lo
	inherit    int  // net.core.devconf_inherit_init_net
	machineV6  bool // the machine's own namespace gives new links IPv6
}

func (i engineInfo) String() string {
	return fmt.Sprintf("engine %s (API 1.%d); ::1 on the engine namespace's lo: %v; net.core.devconf_inherit_init_net=%d; IPv6 on by default in the machine's namespace: %v",
		i.version, i.apiMinor, i.engineIPv6, i.inherit, i.machineV6)
}

// atLeast reports whether the engine serves Engine API 1.<minor> or later:
// 1.45 is Docker 26.0, 1.46 27.0, 1.48 28.0. The API version, not the
// version string, since a dockerd built with go install says
// "library-import".
func (i engineInfo) atLeast(minor int) bool { return i.apiMinor >= minor }

// probeEngine reads the engine's API version and the IPv6 state the
// container expectations depend on.
func probeEngine(t testing.TB, e *engine) engineInfo {
	t.Helper()
	var i engineInfo
	var api string
	i.version, api = e.version.Version, e.version.APIVersion
	if _, err := fmt.Sscanf(api, "1.%d", &i.apiMinor); err != nil {
		t.Fatalf("engine API version %q: %v", api, err)
	}
	i.engineIPv6 = hasLoIPv6(t, e)
	i.inherit, _ = strconv.Atoi(strings.TrimSpace(readFile(t, "/proc/sys/net/core/devconf_inherit_init_net", "0")))
	i.machineV6 = strings.TrimSpace(readFile(t, "/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")) == "0"
	return i
}

// containerIPv6 reports whether a container's lo carries ::1, given
// whether the engine's namespace has IPv6.
//
// 20.10 to 25 turn IPv6 off in every container namespace and turn it on
// for lo only when an interface gets an IPv6 address (osl/namespace_linux.go
// setIPv6 "all" and checkLoV6; source v20.10.24). A hostpass network hands
// out no interface and docker_gwbridge is IPv4 only, so no ::1 there.
//
// From 26 Docker leaves it to the kernel (moby commit a8f7c5ee48, first in
// v26.0.0; source v2.0.0-beta.21). The container's namespace is made from
// inside the engine's (by runc from 28), and the kernel sets a new
// namespace's IPv6 by net.core.devconf_inherit_init_net (Linux
// Documentation/admin-guide/sysctl/net.rst): 0, the default, and 2 reset
// it to the defaults (IPv6 on), 1 copies the machine's, 3 that of the
// namespace it is made in.
func (i engineInfo) containerIPv6(engineIPv6 bool) bool {
	if !i.atLeast(45) {
		return false
	}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		return false // a kernel without IPv6
	}
	switch i.inherit {
	case 1:
		return i.machineV6
	case 3:
		return engineIPv6
	}
	return true
}

// netw is a network the test made, and its network.create record.
type netw struct {
	name, id, tag string
	create        record
}

// created runs a network create that must succeed and checks its
// network.create record; pools, when given, are its exact ipam_pools.
func created(t *testing.T, e *engine, p *daemon, eng engineInfo, args []string, tag string, pools []string) netw {
	t.Helper()
	before := len(readAudit(t, p.audit))
	id := e.docker(t, args...)
	n := netw{name: args[len(args)-1], id: id, tag: tag}
	n.create = last(t, waitCount(t, p.audit, before+1))
	c := n.create
	if c.Event != "network.create" || c.Outcome != "ok" || c.NetworkID != id || c.Tag != tag || c.Internal {
		t.Fatalf("want network.create ok of %s tagged %s, not internal; got:\n%s", id, tag, c.line)
	}
	if pools != nil && !equal(c.IPAMPools, pools) {
		t.Errorf("network.create ipam_pools %q, want %q", c.IPAMPools, pools)
	}
	// Options as Docker sent them, less the tag; 28 added enable_ipv4
	// (source v28.0.0).
	want := `{"com.docker.network.enable_ipv6":true}`
	if eng.atLeast(48) {
		want = `{"com.docker.network.enable_ipv4":true,"com.docker.network.enable_ipv6":true}`
	}
	if got, _ := json.Marshal(c.Options); string(got) != want {
		t.Errorf("network.create options %s, want %s", got, want)
	}
	return n
}

// pools returns the network's IPv4 pool, and checks that its create record
// names that pool and then v6, and nothing else.
func (n netw) pools(t *testing.T, v6 string) (netip.Prefix, netip.Prefix) {
	t.Helper()
	if len(n.create.IPAMPools) != 2 || n.create.IPAMPools[1] != v6 {
		t.Fatalf("network.create ipam_pools %q, want an IPv4 pool of the default IPAM, then %s", n.create.IPAMPools, v6)
	}
	v4, err := netip.ParsePrefix(n.create.IPAMPools[0])
	if err != nil || !v4.Addr().Is4() {
		t.Fatalf("network.create ipam_pools[0] %q is not an IPv4 pool (%v)", n.create.IPAMPools[0], err)
	}
	return v4, netip.MustParsePrefix(v6)
}

// checkInspect checks what `docker network inspect` shows: EnableIPv6, the
// IPAM driver and its config, exactly.
func (n netw) checkInspect(t *testing.T, e *engine, driver string, cfg []ipamEntry) {
	t.Helper()
	if got, want := e.docker(t, "network", "inspect", "--format", "{{.EnableIPv6}} {{.IPAM.Driver}}", n.name), "true "+driver; got != want {
		t.Errorf("network inspect %s: EnableIPv6 and IPAM driver %q, want %q", n.name, got, want)
	}
	got := ipamConfig(t, e, n.name)
	t.Logf("network inspect %s: IPAM config %+v", n.name, got)
	if fmt.Sprint(got) != fmt.Sprint(cfg) {
		t.Errorf("network inspect %s: IPAM config %+v, want %+v", n.name, got, cfg)
	}
}

// remove removes the network and checks its network.delete record.
func (n netw) remove(t *testing.T, e *engine, p *daemon) {
	t.Helper()
	before := len(readAudit(t, p.audit))
	e.docker(t, "network", "rm", n.name)
	recs := waitCount(t, p.audit, before+1)
	if d := last(t, recs); d.Event != "network.delete" || d.Outcome != "ok" || d.NetworkID != n.id {
		t.Errorf("after network rm, want network.delete ok of %s; got:\n%s", n.id, d.line)
	}
	checkSeq(t, recs)
}

// poolWarning is the warning hostpass logs for a network whose IPAM hands
// out addresses (driver/network.go), as its log says it.
const poolWarning = `level=warning msg="network has an IPAM pool, but hostpass hands out no addresses: Docker will show addresses no interface carries; create it with --ipam-driver null"`

// checkPoolWarning checks what the plugin's log says of n's IPAM pools:
// one warning naming pool, or, for "", none (null IPAM: 0.0.0.0/0, and
// ::/0 too with --ipv6 on 28+, hand out nothing).
func (n netw) checkPoolWarning(t *testing.T, p *daemon, pool string) {
	t.Helper()
	var got []string
	for _, line := range strings.Split(readLog(t, p.logPath), "\n") {
		if strings.Contains(line, poolWarning) && strings.Contains(line, " network="+n.id) {
			got = append(got, line)
		}
	}
	switch {
	case pool == "" && len(got) > 0:
		t.Errorf("the plugin warns of an IPAM pool on %s, created with --ipam-driver null:\n%s", n.name, strings.Join(got, "\n"))
	case pool != "" && (len(got) != 1 || !strings.Contains(got[0], " pool="+pool)):
		t.Errorf("want one warning of the IPAM pool %s of %s in the plugin's log; got %d:\n%s", pool, n.name, len(got), strings.Join(got, "\n"))
	}
}

// refused runs a network create that Docker must refuse with exactly want,
// before asking hostpass: no network, no record.
func refused(t *testing.T, e *engine, p *daemon, args []string, name, want string) {
	t.Helper()
	before := len(readAudit(t, p.audit))
	out, err := e.dockerTry(args...)
	if err == nil {
		t.Fatalf("docker %s succeeded (%s); want it refused with %q", strings.Join(args, " "), out, want)
	}
	if out != want {
		t.Errorf("docker %s said:\n%s\nwant:\n%s", strings.Join(args, " "), out, want)
	}
	if _, err := e.dockerTry("network", "inspect", name); err == nil {
		t.Errorf("network %s exists after a refused create", name)
	}
	if recs := readAudit(t, p.audit); len(recs) != before {
		t.Errorf("a create Docker refused left records:\n%s", dumpRecords(recs[before:]))
	}
}

// checkDefaultIPAM checks a default-IPAM IPv6 network and a container on
// it; subnetGiven says whether --subnet named the IPv6 pool.
func checkDefaultIPAM(t *testing.T, e *engine, p *daemon, eng engineInfo, n netw, v4, v6 netip.Prefix, subnetGiven bool) {
	t.Helper()
	n.checkPoolWarning(t, p, v4.String())
	var cfg []ipamEntry
	if eng.atLeast(48) {
		// GwAllocCheck: no gateway reserved, in either family (see
		// gwalloc_test.go). inspect lists the pools the user named first,
		// then those the IPAM chose (daemon/network.go buildIPAMResources;
		// source v2.0.0-beta.21).
		cfg = []ipamEntry{{Subnet: v4.String()}, {Subnet: v6.String()}}
		if subnetGiven {
			cfg = []ipamEntry{{Subnet: v6.String()}, {Subnet: v4.String()}}
		}
	} else {
		// 20.10 reserves both gateways (CreateNetwork's IPv6Data carried
		// Gateway fd00:1::1/64), but inspect shows an IPv6 gateway only
		// when the user named one: for a --subnet it shows the user's
		// config (daemon/network.go buildIpamResources; source v20.10.24).
		cfg = []ipamEntry{{Subnet: v4.String(), Gateway: v4.Addr().Next().String()}, {Subnet: v6.String()}}
	}
	n.checkInspect(t, e, "default", cfg)
	v4addr, v6addr := endpointAddrs(eng, v4, v6)
	c := runProbe(t, e, p, n, "c6-"+n.tag)
	c.check(t, eng.containerIPv6(eng.engineIPv6), v4addr, v6addr)
	c.checkHostLo(t, eng.engineIPv6)
}

// endpointAddrs are the addresses Docker's default IPAM gives the first
// endpoint on a fresh network: the first after the pool's own address and
// the gateway, or, with no gateway reserved (28+), the first after the
// pool's own address (ipams/defaultipam newPoolData; source v2.0.0-beta.21).
func endpointAddrs(eng engineInfo, v4, v6 netip.Prefix) (string, string) {
	a4, a6 := v4.Addr().Next().Next(), v6.Addr().Next().Next()
	if eng.atLeast(48) {
		a4, a6 = v4.Addr().Next(), v6.Addr().Next()
	}
	return netip.PrefixFrom(a4, v4.Bits()).String(), netip.PrefixFrom(a6, v6.Bits()).String()
}

// ulaPool is the first /64 of the ULA /48 Docker 27+ derives from the
// engine's ID (daemon/daemon.go deriveULABaseNetwork: the 40 low bits of
// the first 8 bytes of SHA-256(ID), after fd; source v2.0.0-beta.21).
func ulaPool(t testing.TB, e *engine) string {
	t.Helper()
	sum := sha256.Sum256([]byte(e.docker(t, "info", "--format", "{{.ID}}")))
	gid := binary.BigEndian.Uint64(sum[:]) & (1<<40 - 1)
	var a [16]byte
	a[0] = 0xfd
	for i := 0; i < 5; i++ {
		a[1+i] = byte(gid >> (8 * (4 - i)))
	}
	return netip.PrefixFrom(netip.AddrFrom16(a), 64).String()
}

// probe is what one container on a network saw, and its audit records.
type probe struct {
	name, hostname string
	addrs          []string // "IFNAME ADDR/LEN" from `ip -o addr`, sorted
	gwbridge       string   // its address on docker_gwbridge, as its eth0 should carry
	sysctls        string   // IPv6's all and lo disable_ipv6, "" if absent
	hosts          string   // /etc/hosts
	inspectV4      string   // docker network inspect: the endpoint's IPv4Address
	inspectV6      string   // ... and IPv6Address
	recs           []record // endpoint.create, .join, .leave, .delete
}

// runProbe starts a container on the network, reads what it sees, removes
// it and checks its four endpoint records.
func runProbe(t *testing.T, e *engine, p *daemon, n netw, name string) probe {
	t.Helper()
	before := len(readAudit(t, p.audit))
	id := e.docker(t, "run", "-d", "--name", name, "--network", n.name, image, "sleep", "300")
	t.Cleanup(func() { e.dockerTry("rm", "-f", name) })
	c := probe{name: name, hostname: id[:12]}
	for _, line := range strings.Split(e.docker(t, "exec", name, "ip", "-o", "addr"), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || (f[2] != "inet" && f[2] != "inet6") {
			t.Fatalf("ip -o addr line %q", line)
		}
		c.addrs = append(c.addrs, f[1]+" "+f[3])
	}
	sort.Strings(c.addrs)
	c.sysctls, _ = e.dockerTry("exec", name, "cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/lo/disable_ipv6")
	c.hosts = e.docker(t, "exec", name, "cat", "/etc/hosts")
	type ep struct{ IPv4Address, IPv6Address string }
	var eps map[string]ep
	inspectJSON(t, e, n.name, ".Containers", &eps)
	c.inspectV4, c.inspectV6 = eps[id].IPv4Address, eps[id].IPv6Address
	inspectJSON(t, e, "docker_gwbridge", ".Containers", &eps)
	c.gwbridge = eps[id].IPv4Address
	e.docker(t, "rm", "-f", name)
	c.recs = waitCount(t, p.audit, before+4)[before:]
	checkRun(t, c.recs, n.id, n.tag, false)
	return c
}

// check compares what the container saw with what it should get: lo with
// 127.0.0.1/8 (and ::1/128 when lo6), eth0 with its docker_gwbridge
// address and nothing else, the endpoint's addresses v4 and v6 ("" for
// none) in inspect, /etc/hosts and the endpoint.create record.
func (c probe) check(t *testing.T, lo6 bool, v4, v6 string) {
	t.Helper()
	t.Logf("%s: ip -o addr %q; IPv6 all,lo disable_ipv6 %q; network inspect: endpoint %q %q", c.name, c.addrs, c.sysctls, c.inspectV4, c.inspectV6)
	if c.gwbridge == "" {
		t.Fatalf("%s has no endpoint on docker_gwbridge", c.name)
	}
	want := []string{"eth0 " + c.gwbridge, "lo 127.0.0.1/8"}
	wantSysctls := "1\n1" // 20.10: IPv6 off in the container, lo included
	if lo6 {
		want, wantSysctls = append(want, "lo ::1/128"), "0\n0"
	}
	sort.Strings(want)
	if !equal(c.addrs, want) {
		t.Errorf("%s: ip -o addr shows %q, want %q", c.name, c.addrs, want)
	}
	if c.sysctls != wantSysctls {
		t.Errorf("%s: net.ipv6.conf.{all,lo}.disable_ipv6 %q, want %q", c.name, c.sysctls, wantSysctls)
	}
	if c.inspectV4 != v4 || c.inspectV6 != v6 {
		t.Errorf("%s: network inspect shows the endpoint with IPv4Address %q IPv6Address %q, want %q %q", c.name, c.inspectV4, c.inspectV6, v4, v6)
	}
	// Docker names the endpoint's addresses in /etc/hosts though no
	// interface carries them.
	for _, a := range []string{v4, v6} {
		if a == "" {
			continue
		}
		line := strings.SplitN(a, "/", 2)[0] + "\t" + c.hostname
		if !strings.Contains(c.hosts+"\n", line+"\n") {
			t.Errorf("%s: /etc/hosts lacks %q:\n%s", c.name, line, c.hosts)
		}
	}
	// endpoint.create records the addresses Docker offered: IPv4 in
	// address, IPv6 (CreateEndpoint's Interface.AddressIPv6) in
	// address_ipv6.
	f := fields(t, c.recs[0])
	var addr string
	if raw, ok := f["address"]; ok {
		if err := json.Unmarshal(raw, &addr); err != nil {
			t.Fatalf("endpoint.create address %s: %v", raw, err)
		}
	}
	if addr != v4 {
		t.Errorf("endpoint.create address %q, want %q:\n%s", addr, v4, c.recs[0].line)
	}
	if c.recs[0].AddressIPv6 != v6 {
		t.Errorf("endpoint.create address_ipv6 %q, want %q:\n%s", c.recs[0].AddressIPv6, v6, c.recs[0].line)
	}
}

// checkHostLo checks lo in the join record's host view: the engine's
// namespace is the container's "host", and its lo has ::1 when v6. The
// view follows netlink, so a change made before `network create` is in it
// by the time of the join.
func (c probe) checkHostLo(t *testing.T, v6 bool) {
	t.Helper()
	want := []string{"127.0.0.1/8"}
	if v6 {
		want = append(want, "::1/128")
	}
	for _, l := range c.recs[1].HostInterfaces {
		if l.Name == "lo" {
			var addrs []string
			if err := json.Unmarshal(l.Addrs, &addrs); err != nil {
				t.Fatalf("host view lo addrs %s: %v", l.Addrs, err)
			}
			if !equal(addrs, want) {
				t.Errorf("endpoint.join host view: lo %q, want %q", addrs, want)
			}
			return
		}
	}
	t.Errorf("endpoint.join host view has no lo:\n%s", c.recs[1].line)
}

// inspectJSON decodes one field of `docker network inspect` into v.
func inspectJSON(t testing.TB, e *engine, network, field string, v any) {
	t.Helper()
	out := e.docker(t, "network", "inspect", "--format", "{{json "+field+"}}", network)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("network inspect %s %s: %q: %v", network, field, out, err)
	}
}

// setEngineIPv6 turns IPv6 on or off in the engine's namespace, for links
// there and links made later.
func setEngineIPv6(t testing.TB, e *engine, on bool) {
	t.Helper()
	v := "1"
	if on {
		v = "0"
	}
	if out, err := e.nsenter("sysctl", "-w", "net.ipv6.conf.all.disable_ipv6="+v, "net.ipv6.conf.default.disable_ipv6="+v).CombinedOutput(); err != nil {
		t.Fatalf("sysctl in the engine's namespace: %v: %s", err, out)
	}
}

// hasLoIPv6 reports whether lo has an IPv6 address in the engine's
// namespace: /proc/net is the reader's namespace's.
func hasLoIPv6(t testing.TB, e *engine) bool {
	t.Helper()
	out, err := e.nsenter("cat", "/proc/net/if_inet6").CombinedOutput()
	if err != nil {
		return false // a kernel without IPv6
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 6 && f[5] == "lo" {
			return true
		}
	}
	return false
}

// readFile reads a file, or returns def if it cannot.
func readFile(t testing.TB, path, def string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	return string(b)
}

//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkDockerRun times `docker run --rm busybox true` on one engine: on a
// hostpass network against the same on a network of a do-nothing driver
// (`hostpass bench --serve-noop`, go-plugins-helpers' handler with empty
// methods, served as a second legacy plugin), each on a gateway network and
// on an --internal one, and against --network none, --network host and
// Docker's default bridge for scale. Issue 11's goal: hostpass within 1.02x of
// the no-op driver on both kinds of network.
//
// hostpass runs as a user would run it: default log level, the watcher on
// (following this engine's events). The runs are interleaved, every round in
// the other order, so that the machine's noise and any drift fall on all
// alike. It reports each one's median, the ratios of the medians, and logs the
// per-round ratios' range; the ratios are the result.
//
//	make bench   (or: go test -tags e2e -run '^$' -bench DockerRun -benchtime 20x ./test/)
//	make bench-29 for Docker Engine 29
func BenchmarkDockerRun(b *testing.B) {
	e := newEngine(b)
	e.loadBusybox(b)
	hp := newLegacyPlugin(b, e)
	hp.watch = true
	hp.extra = []string{"--log-level", "info"} // serve's default; the suite's plugins log at debug
	hp.start(b)
	noop := newLegacyPlugin(b, e)
	noop.args = []string{"bench", "--serve-noop", noop.sock}
	noop.start(b)
	for _, n := range []struct{ name, driver string }{{"hp-gw", hp.name}, {"noop-gw", noop.name}} {
		e.docker(b, "network", "create", "-d", n.driver, "--ipam-driver", "null", n.name)
		e.docker(b, "network", "create", "-d", n.driver, "--ipam-driver", "null", "--internal", strings.Replace(n.name, "-gw", "-int", 1))
	}
	networks := []string{"none", "host", "bridge", "hp-gw", "noop-gw", "hp-int", "noop-int"}
	for _, n := range networks { // warm up: image, gateway bridge, plugin clients
		e.docker(b, "run", "--rm", "--network", n, image, "true")
	}
	took := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		order := slices.Clone(networks)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, n := range order {
			start := time.Now()
			e.docker(b, "run", "--rm", "--network", n, image, "true")
			took[n] = append(took[n], time.Since(start))
		}
	}
	b.StopTimer()
	med := func(n string) time.Duration { return median(took[n]) }
	for _, n := range networks {
		b.ReportMetric(ms(med(n)), n+"-ms")
	}
	for _, kind := range []string{"gw", "int"} {
		h, o := "hp-"+kind, "noop-"+kind
		b.ReportMetric(float64(med(h))/float64(med(o)), h+"/"+o)
		rs := roundRatios(took[h], took[o])
		gm, lo, hi := geomeanCI(rs)
		b.Logf("%s/%s per round (%d rounds): median %.3f, range %.3f-%.3f, geometric mean %.3f (95%% CI %.3f-%.3f)",
			h, o, len(rs), rs[len(rs)/2], rs[0], rs[len(rs)-1], gm, lo, hi)
	}
	b.ReportMetric(float64(med("hp-gw"))/float64(med("none")), "hp-gw/none")
	b.ReportMetric(float64(med("hp-gw"))/float64(med("host")), "hp-gw/host")
	b.Logf("engine %s; hostpass %s (defaults, watcher on), no-op %s", e.version, hp.name, noop.name)
}

// roundRatios are a[i]/b[i], sorted: each round's ratio.
func roundRatios(a, b []time.Duration) []float64 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("rounds differ: %d against %d", len(a), len(b)))
	}
	r := make([]float64, len(a))
	for i := range a {
		r[i] = float64(a[i]) / float64(b[i])
	}
	sort.Float64s(r)
	return r
}

// geomeanCI is the geometric mean of ratios and its 95% confidence interval
// (normal approximation on the logs): how far the noise leaves the ratio
// undecided.
func geomeanCI(r []float64) (gm, lo, hi float64) {
	var sum, sq float64
	for _, x := range r {
		sum += math.Log(x)
	}
	mean := sum / float64(len(r))
	for _, x := range r {
		sq += (math.Log(x) - mean) * (math.Log(x) - mean)
	}
	half := 0.0
	if len(r) > 1 {
		half = 1.96 * math.Sqrt(sq/float64(len(r)-1)/float64(len(r)))
	}
	return math.Exp(mean), math.Exp(mean - half), math.Exp(mean + half)
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

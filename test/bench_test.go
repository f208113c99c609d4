//go:build e2e

package e2e

import (
	"sort"
	"testing"
	"time"
)

// BenchmarkDockerRun times `docker run --rm busybox true` on a hostpass
// network against --network none, --network host and Docker's default
// bridge, on one engine, in interleaved rounds so that the machine's noise
// hits all alike. It reports each one's median and the ratios; the ratios are
// the result. An --internal hostpass network (no gateway bridge) shows how
// much of the cost is Docker's gateway service rather than hostpass.
//
//	make bench   (or: go test -tags e2e -run '^$' -bench DockerRun -benchtime 20x ./test/)
func BenchmarkDockerRun(b *testing.B) {
	e := newEngine(b)
	e.loadBusybox(b)
	p := newLegacyPlugin(b, e)
	p.start(b)
	e.docker(b, "network", "create", "-d", p.name, "--ipam-driver", "null", "hp-bench")
	e.docker(b, "network", "create", "-d", p.name, "--ipam-driver", "null", "--internal", "hp-internal")
	networks := []string{"none", "host", "bridge", "hp-bench", "hp-internal"}
	for _, n := range networks { // warm up: image, gateway bridge, plugin client
		e.docker(b, "run", "--rm", "--network", n, image, "true")
	}
	took := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, n := range networks {
			start := time.Now()
			e.docker(b, "run", "--rm", "--network", n, image, "true")
			took[n] = append(took[n], time.Since(start))
		}
	}
	b.StopTimer()
	none, host, hp := median(took["none"]), median(took["host"]), median(took["hp-bench"])
	b.ReportMetric(ms(none), "none-ms")
	b.ReportMetric(ms(host), "host-ms")
	b.ReportMetric(ms(median(took["bridge"])), "bridge-ms")
	b.ReportMetric(ms(hp), "hostpass-ms")
	b.ReportMetric(ms(median(took["hp-internal"])), "hostpass-internal-ms")
	b.ReportMetric(float64(hp)/float64(none), "hostpass/none")
	b.ReportMetric(float64(hp)/float64(host), "hostpass/host")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

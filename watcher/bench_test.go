package watcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

// BenchmarkEventRate measures the events per second the watcher handles,
// Docker's stream delivering them as fast as the watcher reads: for each
// --network host container, connect, start, die and disconnect (two
// inspects, a host.join and a host.leave, fsynced to a real audit log).
// Inspect takes the given latency (about 0.7 ms measured against an idle
// dockerd 20.10 here; more under load). serial is the baseline: one event at
// a time, the state written after each, as the watcher did before.
//
//	go test -run '^$' -bench EventRate -benchtime 4000x ./watcher
func BenchmarkEventRate(b *testing.B) {
	for _, latency := range []time.Duration{time.Millisecond, 5 * time.Millisecond} {
		for _, mode := range []struct {
			name  string
			lanes int
			every time.Duration
		}{{"serial", 1, 0}, {"lanes", concurrency, saveEvery}} {
			b.Run(fmt.Sprintf("inspect=%s/%s", latency, mode.name), func(b *testing.B) {
				h := newHarness(b, "all", false)
				h.w.lanes, h.w.saveEvery = newLanes(mode.lanes), mode.every
				h.fake.latency = latency
				stop := h.run()
				defer stop()
				s := <-h.fake.streams
				h.fake.listed(b, 1)
				containers := b.N / 4
				var feed []events.Message // as the engine sends them, made before the clock starts
				for i := 0; i < containers; i++ {
					id, at := fmt.Sprint("c", i), t0.Add(time.Duration(i)*time.Millisecond)
					// Not running: what reconcile lists after the stream breaks
					// (settle) adds nothing.
					h.fake.set(newContainer(id, id, "busybox", false, "host"))
					for _, e := range []Event{hostEvent("connect", id, at), startEvent(id, at),
						{Time: at.Add(time.Microsecond), Type: "container", Action: "die", ContainerID: id},
						hostEvent("disconnect", id, at.Add(time.Microsecond))} {
						feed = append(feed, h.wire(e))
					}
				}
				b.ResetTimer()
				start := time.Now()
				for _, m := range feed {
					s.events <- m
				}
				h.settle(s)
				elapsed := time.Since(start)
				b.StopTimer()
				if n := len(h.records()); n != 2*containers {
					b.Fatalf("%d records, want %d", n, 2*containers)
				}
				b.ReportMetric(float64(len(feed))/elapsed.Seconds(), "events/s")
			})
		}
	}
}

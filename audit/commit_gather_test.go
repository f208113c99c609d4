package audit

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// The callers whose hand-off waits when the committer wakes share its
// write and fsync: gather takes every one of them in one batch. The
// senders are known to be parked on the channel before gather runs, so the
// test does not depend on the scheduler's order (records/fsync under load
// is BenchmarkAppendDisk16's metric, not a test's). So this test cannot
// fail if the committer's runtime.Gosched yield is removed: it checks that
// gather drains every parked sender, not that the yield lets more park; the
// yield's effect is measured (records/fsync), not tested.
func TestGatherTakesEverySenderParked(t *testing.T) {
	const senders = 8
	requests := make(chan request) // unbuffered, as Log.requests
	for i := 0; i < senders; i++ {
		go func() { requests <- request{rec: Record{Event: EndpointJoin}} }()
	}
	waitParkedSenders(t, senders)
	first := request{rec: Record{Event: NetworkCreate}}
	batch := gather(requests, []request{first})
	if len(batch) != senders+1 {
		t.Fatalf("gather took %d requests, want %d: the first and the %d parked senders share one fsync", len(batch), senders+1, senders)
	}
	if batch[0].rec.Event != NetworkCreate {
		t.Errorf("batch starts with %s, want the request that woke the committer (%s)", batch[0].rec.Event, NetworkCreate)
	}
}

// A batch stops at maxBatch; the rest wait for the next write.
func TestGatherStopsAtMaxBatch(t *testing.T) {
	requests := make(chan request, maxBatch+5)
	for i := 0; i < maxBatch+5; i++ {
		requests <- request{}
	}
	batch := gather(requests, []request{<-requests})
	if len(batch) != maxBatch || len(requests) != 5 {
		t.Errorf("gather took %d requests and left %d, want %d and 5", len(batch), len(requests), maxBatch)
	}
}

// waitParkedSenders waits until n goroutines of this test are blocked
// sending on a channel, as the goroutine dump shows them.
func waitParkedSenders(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		dump := string(buf[:runtime.Stack(buf, true)])
		parked := 0
		for _, g := range strings.Split(dump, "\n\n") {
			if strings.Contains(g, "[chan send") && strings.Contains(g, "TestGatherTakesEverySenderParked") {
				parked++
			}
		}
		if parked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d senders parked after 10s:\n%s", parked, n, dump)
		}
		time.Sleep(time.Millisecond)
	}
}

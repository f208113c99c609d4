package driver

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
)

// BenchmarkEndpointMemory is the live heap each endpoint holds, measured
// over 20,000 endpoints made by CreateEndpoint (as many as the issue's
// 20,000 containers), each offered an address as Docker's default IPAM
// does. Its metric is bytes/endpoint; ns/op is the 20,000 creates, fsyncs
// included.
func BenchmarkEndpointMemory(b *testing.B) {
	const endpoints = 20000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d, _ := newDriver(b)
		if err := create(d, netID(1), nil); err != nil {
			b.Fatal(err)
		}
		before := liveHeap()
		b.StartTimer()
		for j := range endpoints {
			// The ID and address as the server decodes them: a string each.
			id, addr := fmt.Sprintf("%064x", 1<<40+j), fmt.Sprintf("172.19.%d.%d/16", j/250, j%250+2)
			req := &network.CreateEndpointRequest{NetworkID: netID(1), EndpointID: id, Interface: &network.EndpointInterface{Address: addr}}
			if _, err := d.CreateEndpoint(req); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(liveHeap()-before)/endpoints, "bytes/endpoint")
		runtime.KeepAlive(d)
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

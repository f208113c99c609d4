package driver

import (
	"fmt"
	"testing"
)

// BenchmarkCreateNetwork measures what the adoption limit costs at worst:
// every CreateNetwork rewrites and fsyncs the state, adopted networks too.
func BenchmarkCreateNetwork(b *testing.B) {
	for _, adopted := range []int{0, maxAdopted} {
		b.Run(fmt.Sprintf("adopted=%d", adopted), func(b *testing.B) {
			d, _ := newDriver(b)
			for i := 1; i <= adopted; i++ {
				d.network("Join", netID(i))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := create(d, netID(1<<30+i), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

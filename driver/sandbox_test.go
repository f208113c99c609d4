package driver

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
)

// BenchmarkJoin is Join with its fsynced record, the key naming a path in a
// directory that exists (Docker's netns folder before the namespace is made).
func BenchmarkJoin(b *testing.B) {
	d, _ := newDriver(b)
	key := filepath.Join(b.TempDir(), "0123456789ab")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ep := fmt.Sprintf("%064x", i)
		if _, err := d.Join(&network.JoinRequest{NetworkID: netID(1), EndpointID: ep, SandboxKey: key}); err != nil {
			b.Fatal(err)
		}
	}
}

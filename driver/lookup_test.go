package driver

import (
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
)

// Lookup gives the watcher what its records say of a network: tag,
// --internal, adopted.
func TestLookupSaysInternalAndAdopted(t *testing.T) {
	d, _ := newDriver(t)
	inner := netID(1)
	d.CreateNetwork(&network.CreateNetworkRequest{NetworkID: inner, Options: map[string]any{
		internalOption: true, genericOptions: map[string]any{"tag": "t1"}}})
	found := strings.Repeat("f0", 32) // adopted: Docker's IDs are 64 hex digits
	d.Join(&network.JoinRequest{NetworkID: found, EndpointID: "e"})
	for _, tc := range []struct {
		id                          string
		tag                         string
		internal, adopted, wantKnow bool
	}{{inner, "t1", true, false, true}, {found, "", false, true, true}, {"other", "", false, false, false}} {
		tag, internal, adopted, ok := d.Lookup(tc.id)
		if tag != tc.tag || internal != tc.internal || adopted != tc.adopted || ok != tc.wantKnow {
			t.Errorf("Lookup(%s) = %q internal=%v adopted=%v known=%v, want %q %v %v %v", tc.id, tag, internal, adopted, ok, tc.tag, tc.internal, tc.adopted, tc.wantKnow)
		}
	}
}

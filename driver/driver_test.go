package driver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/errclass"
)

func newDriver(t testing.TB) (*Driver, string) {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.jsonl")
	a := audit.Open(logPath, nil)
	t.Cleanup(func() { a.Close() })
	log := logrus.New()
	log.SetOutput(io.Discard)
	d, err := New(Config{Name: "hp", Hostname: "h", StateDir: filepath.Join(dir, "state"), Audit: a, Log: logrus.NewEntry(log)})
	if err != nil {
		t.Fatal(err)
	}
	return d, logPath
}

// netID is a network ID of the form Docker makes, 64 lowercase hex digits.
func netID(i int) string { return fmt.Sprintf("%064x", i) }

func records(t *testing.T, path string) []audit.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r audit.Record
		json.Unmarshal(sc.Bytes(), &r)
		out = append(out, r)
	}
	return out
}

func TestErrorKinds(t *testing.T) {
	d, _ := newDriver(t)
	err := d.CreateNetwork(&network.CreateNetworkRequest{NetworkID: netID(1), Options: map[string]any{genericOptions: map[string]any{"mtu": "1"}}})
	if !errclass.IsInvalidParameter(err) {
		t.Errorf("unknown option: %T %v, want an invalid parameter", err, err)
	}
	if _, err := d.AllocateNetwork(&network.AllocateNetworkRequest{}); !errclass.IsInvalidParameter(err) {
		t.Errorf("AllocateNetwork: %v, want an invalid parameter", err)
	}
}

func TestTeardownIsIdempotentAndAudited(t *testing.T) {
	d, path := newDriver(t)
	for i := 0; i < 2; i++ {
		if err := d.Leave(&network.LeaveRequest{NetworkID: "gone", EndpointID: "e"}); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteEndpoint(&network.DeleteEndpointRequest{NetworkID: "gone", EndpointID: "e"}); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: "gone"}); err != nil {
			t.Fatal(err)
		}
	}
	recs := records(t, path)
	if len(recs) != 6 {
		t.Fatalf("%d records, want 6 (each call audited)", len(recs))
	}
	for _, r := range recs {
		if r.Adopted == nil || !*r.Adopted || r.Outcome != audit.OK {
			t.Errorf("%s on an unknown network: %+v, want ok and adopted", r.Event, r)
		}
	}
	if _, ok := d.Knows("gone"); ok {
		t.Error("teardown of an unknown network made hostpass remember it")
	}
}

func TestKnowsCreatedAndAdoptedNetworks(t *testing.T) {
	d, _ := newDriver(t)
	made, found := netID(1), strings.Repeat("ab", 32)
	d.CreateNetwork(&network.CreateNetworkRequest{NetworkID: made, Options: map[string]any{genericOptions: map[string]any{"tag": "t1"}}})
	d.Join(&network.JoinRequest{NetworkID: found, EndpointID: "e"})
	if tag, ok := d.Knows(made); !ok || tag != "t1" {
		t.Errorf("Knows(made) = %q %v, want t1 true", tag, ok)
	}
	if _, ok := d.Knows(found); !ok {
		t.Error("a network adopted at Join is not known")
	}
	d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: made})
	if _, ok := d.Knows(made); ok {
		t.Error("a deleted network is still known")
	}
}

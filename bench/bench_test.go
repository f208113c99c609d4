package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentileIsNearestRank(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, x := range n {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.99, 4 * time.Millisecond},
		{ms(1, 2, 3, 4), 0, 1 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v; want %v", tc.sorted, tc.p, got, tc.want)
		}
	}
}

func TestCheckAcceptsTheDefaults(t *testing.T) {
	o := Options{Socket: "/run/hp.sock", Clients: DefaultClients, Duration: DefaultDuration, Op: Ops[0]}
	if err := o.Check(false, false); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

func TestOverallWeighsRoundsByTime(t *testing.T) {
	rounds := []Round{
		{Noop: Summary{Rate: 100, DurationS: 1}, Hostpass: Summary{Rate: 50, DurationS: 1}},
		{Noop: Summary{Rate: 300, DurationS: 3}, Hostpass: Summary{Rate: 10, DurationS: 1}},
	}
	o := Overall(rounds)
	// no-op: (100 + 900) / 4 s; hostpass: (50 + 10) / 2 s.
	if o.Noop.Rate != 250 || o.Hostpass.Rate != 30 || o.Ratio() != 0.12 {
		t.Errorf("Overall = no-op %v/s, hostpass %v/s, ratio %v; want 250, 30, 0.12", o.Noop.Rate, o.Hostpass.Rate, o.Ratio())
	}
}

// TestFloorDriverFsyncsCreateAndJoin checks that the floor driver makes each
// CreateEndpoint and Join durable, one 512-byte line each, and nothing else,
// and that stop removes its file.
func TestFloorDriverFsyncsCreateAndJoin(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(t.TempDir(), "floor.sock")
	stop, err := ServeNoop(socket, dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), Options{Socket: socket, Clients: 2, Calls: 10, Duration: time.Minute, Op: "container"})
	if err != nil || res.Errors > 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("want one file in %s, got %v (%v)", dir, ents, err)
	}
	info, err := ents[0].Info()
	if err != nil || info.Size() != 2*10*512 {
		t.Errorf("floor file %v is %d bytes, want %d: 10 creates and 10 joins of 512 bytes (%v)", ents[0].Name(), info.Size(), 2*10*512, err)
	}
	stop()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("stop left %d files in %s", len(ents), dir)
	}
	if _, err := ServeNoop(socket, filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "serving the floor driver: ") {
		t.Errorf("missing folder: err = %v", err)
	}
}

func TestOverallCoversTheFloor(t *testing.T) {
	rounds := []Round{
		{Noop: Summary{Rate: 100, DurationS: 1}, Floor: Summary{Rate: 40, DurationS: 1}, Hostpass: Summary{Rate: 30, DurationS: 1}},
		{Noop: Summary{Rate: 100, DurationS: 1}, Floor: Summary{Rate: 20, DurationS: 1}, Hostpass: Summary{Rate: 30, DurationS: 1}},
	}
	if o := Overall(rounds); o.Floor.Rate != 30 || o.FloorRatio() != 1 {
		t.Errorf("Overall floor %v/s, hostpass/floor %v; want 30, 1", o.Floor.Rate, o.FloorRatio())
	}
	if (Round{}).FloorRatio() != 0 {
		t.Error("FloorRatio without a floor run is not 0")
	}
}

func TestFsyncFloorCleansUp(t *testing.T) {
	dir := t.TempDir()
	d, err := FsyncFloor(dir, 5)
	if err != nil || d <= 0 {
		t.Fatalf("FsyncFloor = %v, %v", d, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %d files in %s", len(ents), dir)
	}
	if _, err := FsyncFloor(filepath.Join(dir, "missing"), 5); err == nil || !strings.Contains(err.Error(), "measuring the fsync floor in "+dir) {
		t.Errorf("missing folder: err = %v", err)
	}
}

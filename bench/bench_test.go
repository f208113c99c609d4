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

package bench

import (
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

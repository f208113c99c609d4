package audit

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// Seq and epochs past uint64 are not read by the fast path (wrapped, they
// would be another number): the line falls to encoding/json, which refuses it.
func TestFastPathRefusesNumbersPastUint64(t *testing.T) {
	for _, n := range []string{"18446744073709551616", "99999999999999999999", "184467440737095516150"} {
		if _, _, ok := digits([]byte(n + ",")); ok {
			t.Errorf("digits read %s", n)
		}
		body := []byte(`{"time":"2026-11-28T10:00:00Z","seq":` + n + `,"event":"x","outcome":"ok","epoch":` + n + `,"prev":"` + Genesis + `"`)
		if f, ok := fastFields(body); ok {
			t.Errorf("fastFields read seq %d epoch %v from %s", f.Seq, f.Epoch, n)
		}
	}
	if v, _, ok := digits([]byte("18446744073709551615,")); !ok || v != 1<<64-1 {
		t.Errorf("digits of the largest uint64: %d %v", v, ok)
	}
}

func TestFastFieldsReadWhatJSONReads(t *testing.T) {
	e, n := uint64(7), uint64(8)
	for _, r := range []Record{
		{Time: time.Now().UTC(), Seq: 1, Event: NetworkCreate, Outcome: OK, Prev: Genesis, Options: map[string]any{"prev": "x", "seq": 9}},
		{Time: time.Now().UTC(), Seq: 123456789, Event: EndpointJoin, Outcome: Refused, Error: `"quoted", "epoch":1`, Epoch: &e, Prev: Genesis},
		{Time: time.Now().UTC(), Seq: 42, Event: EpochEnd, Outcome: OK, Epoch: &e, NextEpoch: &n, Prev: Genesis},
	} {
		line, err := encode(&r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _, ok := splitHash(line)
		fast, fok := fastFields(body)
		var slow chainFields
		json.Unmarshal(line, &slow)
		if !ok || !fok || fmt.Sprint(fast.Seq, fast.Event, fast.Prev, fast.Time.Equal(slow.Time), fast.Epoch == nil, fast.NextEpoch == nil) !=
			fmt.Sprint(slow.Seq, slow.Event, slow.Prev, true, slow.Epoch == nil, slow.NextEpoch == nil) ||
			(fast.Epoch != nil && *fast.Epoch != *slow.Epoch) || (fast.NextEpoch != nil && *fast.NextEpoch != *slow.NextEpoch) {
			t.Errorf("line %s\nfast %+v\njson %+v", line, fast, slow)
		}
	}
}

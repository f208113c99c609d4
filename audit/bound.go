package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// MaxRecord bounds every line of the log, in bytes (without its newline).
// A larger record made the tail reader lose the chain, and a syslog
// collector drops or splits it. Every record passes encodeRecord, whoever
// wrote it (driver, watcher, the log itself).
const MaxRecord = 64 << 10

// Cut is the mark at the end of a string the log shortened.
const Cut = "…"

// A record over MaxRecord is cut in stages, each applied only if the one
// before did not bring it under: first long strings, then long lists and
// maps (their first entries, in order, kept up to a budget), and at last,
// for records no real call produces, everything but short strings.
var cutStages = []cutter{
	{text: 1024, list: -1},
	{text: 1024, list: 6 << 10},
	{text: 64, list: 0},
}

// encodeRecord is how every record becomes a line: the fields that do not
// apply to its event are dropped, and it is cut if its line would be longer
// than MaxRecord (the fields cut are named in rec.Truncated).
//
// The last stage keeps only the chain and what identifies the record
// (bareRecord), so no record of any shape exceeds MaxRecord.
func encodeRecord(rec *Record, key []byte) ([]byte, error) {
	return newLineEncoder(nil, key).record(rec)
}

// record appends rec's line, without the newline, to the buffer, cut as
// encodeRecord says, and returns that line.
func (e *lineEncoder) record(rec *Record) ([]byte, error) {
	omitInapplicable(rec)
	start := len(e.w.b)
	line, err := e.line(rec)
	for _, stage := range cutStages {
		if err != nil || len(line) <= MaxRecord {
			break
		}
		stage.apply(rec)
		e.w.b = e.w.b[:start]
		line, err = e.line(rec)
	}
	if err == nil && len(line) > MaxRecord {
		*rec = bareRecord(*rec, line)
		e.w.b = e.w.b[:start]
		line, err = e.line(rec)
	}
	if err == nil && len(line) > MaxRecord {
		err = fmt.Errorf("a %s record is %d bytes even with only its chain and identity fields, over the bound of %d", rec.Event, len(line), MaxRecord)
	}
	if err != nil {
		e.w.b = e.w.b[:start]
		return nil, err
	}
	return line, nil
}

// bareText bounds each string bareRecord keeps.
const bareText = 64

// bareRecord is r with only the chain and the fields that say what the
// record is about (event, outcome, host, network, endpoint, container and
// via IDs, the view it names), each string cut to bareText bytes; every
// other field is dropped and named in Truncated. line is r encoded, from
// which the dropped fields are read.
func bareRecord(r Record, line []byte) Record {
	cut := func(s string) string { c, _ := cutString(s, bareText); return c }
	b := Record{
		Time: r.Time, Seq: r.Seq, Event: Event(cut(string(r.Event))), Schema: r.Schema, Outcome: Outcome(cut(string(r.Outcome))),
		Host: cut(r.Host), NetworkID: cut(r.NetworkID), EndpointID: cut(r.EndpointID),
		HostView: cut(r.HostView), BaseView: cut(r.BaseView), Lost: r.Lost,
		Epoch: r.Epoch, NextEpoch: r.NextEpoch, Prev: r.Prev,
	}
	if r.Container != nil {
		b.Container = &Container{ID: cut(r.Container.ID)}
	}
	if r.Via != nil {
		b.Via = &ContainerRef{ID: cut(r.Via.ID)}
	}
	var had map[string]json.RawMessage
	json.Unmarshal(line, &had)
	kept, _ := json.Marshal(b)
	var have map[string]json.RawMessage
	json.Unmarshal(kept, &have)
	for _, name := range sortedKeys(had) {
		if _, ok := have[name]; !ok && name != "hash" && name != "truncated" {
			b.Truncated = append(b.Truncated, name)
		} else if ok && string(have[name]) != string(had[name]) {
			b.Truncated = append(b.Truncated, name)
		}
	}
	return b
}

// boundKept cuts a record kept in memory while the log is unwritable as
// encodeRecord will when it is written, so that a kept record holds at
// most MaxRecord bytes (and a 900 KiB tag does not wait in memory), and
// returns its size. The chain fields it measures with are the longest
// there are.
func boundKept(rec Record) (Record, int) {
	r := rec
	// The host view a record saw is not encoded in it, so the bound does
	// not see it: drop it. Kept records are teardown and refusals, and a
	// refused join exposed its container to nothing.
	r.View = nil
	e := uint64(math.MaxUint64)
	r.Seq, r.Prev, r.Schema, r.Epoch, r.NextEpoch = e, Genesis, Schema, &e, nil
	if rec.NextEpoch != nil {
		r.NextEpoch = &e
	}
	line, err := encodeRecord(&r, nil)
	r.Seq, r.Prev, r.Schema, r.Epoch, r.NextEpoch, r.Hash = rec.Seq, rec.Prev, rec.Schema, rec.Epoch, rec.NextEpoch, rec.Hash
	if err != nil {
		return r, MaxRecord
	}
	return r, len(line)
}

// omitInapplicable drops what no writer should set on a record about the
// host rather than a hostpass network: host.* records are about Docker's
// own host driver, so they carry no driver, network or network flags.
func omitInapplicable(rec *Record) {
	if strings.HasPrefix(string(rec.Event), "host.") {
		rec.Driver, rec.NetworkID, rec.Tag, rec.Internal, rec.Adopted = "", "", "", nil, nil
	}
}

// cutter shortens strings to text bytes (plus Cut), and keeps of each list
// or map the entries that fit in list encoded bytes (< 0: all). It never
// changes a map or slice in place: the caller's (the driver's state) may
// share them.
type cutter struct {
	text, list int
	rec        *Record
}

func (k cutter) apply(r *Record) {
	k.rec = r
	for _, f := range []struct {
		name string
		s    *string
	}{
		{"error", &r.Error}, {"detail", &r.Detail}, {"driver", &r.Driver}, {"host", &r.Host},
		{"network_id", &r.NetworkID}, {"endpoint_id", &r.EndpointID}, {"sandbox_key", &r.SandboxKey},
		{"tag", &r.Tag}, {"address", &r.Address}, {"address_ipv6", &r.AddressIPv6}, {"network_name", &r.NetworkName},
		{"policy", &r.Policy}, {"action", &r.Action},
		// Written by the log itself and far under the bound; a cut one
		// would no longer verify, and says so by its mark.
		{"checkpoint", &r.Checkpoint}, {"checkpoint_reason", &r.CheckpointReason}, {"key_cert", &r.KeyCert},
	} {
		k.str(f.name, f.s)
	}
	k.strs("ipam_pools", &r.IPAMPools)
	cutMap(k, "network_labels", &r.NetworkLabels, cutString)
	cutMap(k, "options", &r.Options, cutAny)
	k.interfaces(r)
	if r.Container != nil {
		c := *r.Container
		r.Container = &c
		k.str("container.id", &c.ID)
		k.str("container.name", &c.Name)
		k.str("container.image", &c.Image)
		k.str("container.image_id", &c.ImageID)
		cutMap(k, "container.labels", &c.Labels, cutString)
		k.strs("container.cap_add", &c.CapAdd)
		k.strs("container.published_ports", &c.Ports)
	}
	if r.Swarm != nil {
		t := *r.Swarm
		r.Swarm = &t
		for _, f := range []struct {
			name string
			s    *string
		}{
			{"swarm.service_name", &t.ServiceName}, {"swarm.service_id", &t.ServiceID}, {"swarm.task_id", &t.TaskID},
			{"swarm.task_name", &t.TaskName}, {"swarm.node_id", &t.NodeID}, {"swarm.stack", &t.Stack},
		} {
			k.str(f.name, f.s)
		}
	}
	if r.LogEnd != nil {
		e := *r.LogEnd
		r.LogEnd = &e
		k.str("log_end.hash", &e.Hash)
		event := string(e.Event)
		k.str("log_end.event", &event)
		e.Event = Event(event)
	}
	if r.Via != nil {
		v := *r.Via
		r.Via = &v
		k.str("via.id", &v.ID)
		k.str("via.name", &v.Name)
	}
}

func (k cutter) mark(field string) {
	if !slices.Contains(k.rec.Truncated, field) {
		k.rec.Truncated = append(k.rec.Truncated, field)
	}
}

// cutString shortens s to at most n bytes on a UTF-8 boundary, plus Cut.
func cutString(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + Cut, true
}

func (k cutter) str(field string, s *string) {
	if c, cut := cutString(*s, k.text); cut {
		*s = c
		k.mark(field)
	}
}

// fits adds an entry of n encoded bytes to *used if the list budget allows.
func (k cutter) fits(used *int, n int) bool {
	if k.list < 0 {
		return true
	}
	if *used+n > k.list {
		return false
	}
	*used += n
	return true
}

func (k cutter) strs(field string, l *[]string) {
	if len(*l) == 0 {
		return
	}
	out, used, cut := make([]string, 0, len(*l)), 0, false
	for _, s := range *l {
		s, c := cutString(s, k.text)
		cut = cut || c
		if !k.fits(&used, jsonLen(s)+1) {
			cut = true
			break
		}
		out = append(out, s)
	}
	if cut {
		*l = out
		k.mark(field)
	}
}

// cutMap cuts a map's keys and values (with cutValue) and keeps its entries,
// in key order, while they fit; labels and options alike.
func cutMap[V any](k cutter, field string, m *map[string]V, cutValue func(V, int) (V, bool)) {
	if len(*m) == 0 {
		return
	}
	out, used, cut := make(map[string]V, len(*m)), 0, false
	for _, key := range sortedKeys(*m) {
		ck, c1 := cutString(key, k.text)
		cv, c2 := cutValue((*m)[key], k.text)
		cut = cut || c1 || c2
		if !k.fits(&used, jsonLen(ck)+jsonLen(cv)+2) {
			cut = true
			break
		}
		out[ck] = cv
	}
	if cut {
		*m = out
		k.mark(field)
	}
}

func (k cutter) interfaces(r *Record) {
	used := 0
	for i, l := range r.HostInterfaces {
		if !k.fits(&used, jsonLen(l)+1) {
			r.OmittedInterfaces += len(r.HostInterfaces) - i
			r.HostInterfaces = r.HostInterfaces[:i:i]
			k.mark("host_interfaces")
			return
		}
	}
}

// cutAny shortens the strings in a decoded JSON value (options are any
// JSON Docker sent).
func cutAny(v any, n int) (any, bool) {
	switch v := v.(type) {
	case string:
		return cutString(v, n)
	case map[string]any:
		out, cut := make(map[string]any, len(v)), false
		for key, e := range v {
			ck, c1 := cutString(key, n)
			ce, c2 := cutAny(e, n)
			out[ck], cut = ce, cut || c1 || c2
		}
		return out, cut
	case map[string]string:
		out, cut := make(map[string]string, len(v)), false
		for key, e := range v {
			ck, c1 := cutString(key, n)
			ce, c2 := cutString(e, n)
			out[ck], cut = ce, cut || c1 || c2
		}
		return out, cut
	case []any:
		out, cut := make([]any, len(v)), false
		for i, e := range v {
			ce, c := cutAny(e, n)
			out[i], cut = ce, cut || c
		}
		return out, cut
	}
	return v, false
}

func jsonLen(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// A join used to carry the whole host view, so records grew with the host
// (62 links: about 10 KB a join). Now the view is a record of its own,
// host.view, written when it changes, and every record that saw it names it
// in host_view: the chain still proves what a container was exposed to.

// viewBudget bounds the links one host.view record holds, in encoded bytes;
// the links beyond it are counted in omitted_interfaces.
const viewBudget = 48 << 10

// viewState is the committer's memory of the last host.view it wrote.
type viewState struct {
	links []Interface // the view as the callers saw it, every link
	id    string      // its host_view
	seq   uint64      // seq of its host.view record; 0: none
	// complete: a reader can rebuild every link of it from the records
	// (no full view since the file began omitted any), so the next view
	// may be written as a change from it.
	complete bool
}

// withViews returns recs with a host.view record ahead of each record whose
// View differs from the last view written, and with HostView set on every
// record that carries a View. A view counts as written only while its
// record is durable in the current file: after a failed write, a rotation
// or a restart, the next record that saw it writes it in full again, so
// every file holds the views its records name, before they name them.
//
// It returns the view state as it will be once recs are durable; the caller
// keeps it only then, since a view whose record failed to write must not
// count as written.
func (c *committer) withViews(recs []Record) ([]Record, viewState) {
	if !slices.ContainsFunc(recs, func(r Record) bool { return r.View != nil }) {
		return recs, c.views
	}
	state := c.views
	v := &state
	written := v.seq != 0 && v.seq <= c.seq && v.seq >= c.fileFirstSeq && c.size > 0
	out := make([]Record, 0, len(recs)+1)
	for _, r := range recs {
		if r.View != nil {
			same := v.id != "" && sameLinks(v.links, r.View)
			if !written || !same {
				view, delta := Record{}, false
				if written && v.complete {
					view, delta = deltaRecord(r, v.links, v.id)
				}
				if !delta {
					view = viewRecord(r)
				}
				v.links, v.id, v.complete = r.View, view.HostView, delta || view.OmittedInterfaces == 0
				v.seq, written = c.seq+uint64(len(out))+1, true
				out = append(out, view)
			}
			r.HostView = v.id
		}
		out = append(out, r)
	}
	return out, state
}

// viewRecord is the host.view record of the view r saw, in full.
func viewRecord(r Record) Record {
	rec := Record{Time: r.Time, Event: HostView, Outcome: OK, Host: r.Host, HostView: viewID(r.View)}
	size := 0
	for _, l := range r.View {
		n := jsonLen(l) + 1
		if size+n > viewBudget {
			rec.OmittedInterfaces++
			continue
		}
		size += n
		rec.HostInterfaces = append(rec.HostInterfaces, l)
	}
	return rec
}

// deltaRecord is the host.view record of the view r saw, as the change from
// base: on a host where containers come and go, a view differs from the one
// before by a veth or two, and a record must not grow with the host. It
// reports false if the change does not fit in viewBudget.
func deltaRecord(r Record, base []Interface, baseID string) (Record, bool) {
	before := make(map[int]Interface, len(base))
	for _, l := range base {
		before[l.Index] = l
	}
	rec := Record{Time: r.Time, Event: HostView, Outcome: OK, Host: r.Host, HostView: viewID(r.View), BaseView: baseID}
	size := 0
	for _, l := range r.View {
		if old, ok := before[l.Index]; !ok || !sameLink(old, l) {
			rec.ChangedInterfaces = append(rec.ChangedInterfaces, l)
			size += jsonLen(l) + 1
		}
		delete(before, l.Index)
	}
	for _, l := range base {
		if _, gone := before[l.Index]; gone {
			rec.RemovedInterfaces = append(rec.RemovedInterfaces, l.Index)
			size += 21
		}
	}
	return rec, size <= viewBudget
}

// viewID names a view: the SHA-256 of its links' JSON encoding, all of
// them, so a change in a link a capped record omits still makes a new view.
func viewID(links []Interface) string {
	b, _ := json.Marshal(links)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sameLinks(a, b []Interface) bool { return slices.EqualFunc(a, b, sameLink) }

func sameLink(x, y Interface) bool {
	return x.Name == y.Name && x.Index == y.Index && x.MAC == y.MAC && x.MTU == y.MTU && x.Up == y.Up && slices.Equal(x.Addrs, y.Addrs)
}

var viewEvent = []byte(`"event":"` + HostView + `"`)

// isView is a cheap test for a host.view line.
func isView(line []byte) bool { return bytes.Contains(line, viewEvent) }

// withInterfaces wraps a Query callback: host.view lines (handed over even
// when the filter drops them, marked by an Entry with only the event set)
// rebuild the current view, and are not passed on unless they match;
// records naming the current view get its links spliced in. The view a
// record names is always the last one before it in its file (withViews
// writes it so), so one view is kept.
func withInterfaces(fn func(r *Entry, line []byte) error) func(r *Entry, line []byte) error {
	var cur liveView
	return func(r *Entry, line []byte) error {
		if isView(line) {
			cur.apply(line)
			if r.Seq == 0 { // the filter dropped it
				return nil
			}
			return fn(r, line)
		}
		if r.HostView == "" || r.HostView != cur.id {
			return fn(r, line)
		}
		ref := []byte(`"host_view":"` + cur.id + `"`)
		i := bytes.Index(line, ref)
		if i < 0 {
			return fn(r, line)
		}
		at := i + len(ref)
		splice := cur.splice()
		spliced := make([]byte, 0, len(line)+len(splice))
		spliced = append(append(append(spliced, line[:at]...), splice...), line[at:]...)
		return fn(r, spliced)
	}
}

// liveView is the host view a reader rebuilt from host.view records.
type liveView struct {
	id      string                  // "" when unknown
	links   map[int]json.RawMessage // by index
	omitted int
	spliced []byte // splice's result for id, built once
}

// apply takes the host.view line: a full view, or a change from the
// current one. A change from a view it does not hold leaves the view
// unknown.
func (v *liveView) apply(line []byte) {
	var rec struct {
		ID      string            `json:"host_view"`
		Base    string            `json:"base_view"`
		Links   []json.RawMessage `json:"host_interfaces"`
		Omitted int               `json:"omitted_interfaces"`
		Changed []json.RawMessage `json:"changed_interfaces"`
		Removed []int             `json:"removed_interfaces"`
	}
	if json.Unmarshal(line, &rec) != nil || rec.ID == "" {
		return
	}
	v.spliced = nil
	if rec.Base == "" {
		v.links, v.omitted = map[int]json.RawMessage{}, rec.Omitted
	} else if rec.Base != v.id || v.id == "" {
		v.id = ""
		return
	}
	for _, l := range append(rec.Links, rec.Changed...) {
		var i struct{ Index int }
		if json.Unmarshal(l, &i) == nil {
			v.links[i.Index] = l
		}
	}
	for _, i := range rec.Removed {
		delete(v.links, i)
	}
	v.id = rec.ID
}

// splice is what goes after host_view: `,"host_interfaces":[...]`, in
// index order, and `,"omitted_interfaces":N` if the view omitted links.
func (v *liveView) splice() []byte {
	if v.spliced != nil {
		return v.spliced
	}
	idx := make([]int, 0, len(v.links))
	for i := range v.links {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	b := []byte(`,"host_interfaces":[`)
	for n, i := range idx {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, v.links[i]...)
	}
	b = append(b, ']')
	if v.omitted > 0 {
		b = fmt.Appendf(b, `,"omitted_interfaces":%d`, v.omitted)
	}
	v.spliced = b
	return b
}

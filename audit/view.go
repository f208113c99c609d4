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
}

// withViews returns recs with a host.view record ahead of each record whose
// View differs from the last view written, and with HostView set on every
// record that carries a View. A view counts as written only while its
// record is durable in the current file: after a failed write, a rotation
// or a restart, the next record that saw it writes it again, so every file
// holds the views its records name, before they name them.
func (c *committer) withViews(recs []Record) []Record {
	if !slices.ContainsFunc(recs, func(r Record) bool { return r.View != nil }) {
		return recs
	}
	v := &c.views
	written := v.seq != 0 && v.seq <= c.seq && v.seq >= c.fileFirstSeq && c.size > 0
	out := make([]Record, 0, len(recs)+1)
	for _, r := range recs {
		if r.View != nil {
			same := v.id != "" && sameLinks(v.links, r.View)
			if !same {
				v.links, v.id = r.View, viewID(r.View)
			}
			if !written || !same {
				v.seq, written = c.seq+uint64(len(out))+1, true
				out = append(out, viewRecord(r, v.id))
			}
			r.HostView = v.id
		}
		out = append(out, r)
	}
	return out
}

// viewRecord is the host.view record of the view r saw.
func viewRecord(r Record, id string) Record {
	rec := Record{Time: r.Time, Event: HostView, Outcome: OK, Host: r.Host, HostView: id}
	size := 0
	for _, l := range r.View {
		b, _ := json.Marshal(l)
		if size+len(b)+1 > viewBudget {
			rec.OmittedInterfaces++
			continue
		}
		size += len(b) + 1
		rec.HostInterfaces = append(rec.HostInterfaces, l)
	}
	return rec
}

// viewID names a view: the SHA-256 of its links' JSON encoding, all of
// them, so a change in a link a capped record omits still makes a new view.
func viewID(links []Interface) string {
	b, _ := json.Marshal(links)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sameLinks(a, b []Interface) bool {
	return slices.EqualFunc(a, b, func(x, y Interface) bool {
		return x.Name == y.Name && x.Index == y.Index && x.MAC == y.MAC && x.MTU == y.MTU && x.Up == y.Up && slices.Equal(x.Addrs, y.Addrs)
	})
}

var viewEvent = []byte(`"event":"host.view"`)

// isView is a cheap test for a host.view line.
func isView(line []byte) bool { return bytes.Contains(line, viewEvent) }

// withInterfaces wraps a Query callback: host.view lines (handed over even
// when the filter drops them, marked by an Entry with only the event set)
// are remembered, not passed on unless they match; records naming the last
// view get its links spliced in. The view a record names is always the last
// one before it in its file (withViews writes it so), so one is remembered.
func withInterfaces(fn func(r *Entry, line []byte) error) func(r *Entry, line []byte) error {
	var id string
	var links []byte // `,"host_interfaces":[...]` and omitted_interfaces, if any
	return func(r *Entry, line []byte) error {
		if isView(line) {
			var v struct {
				ID      string          `json:"host_view"`
				Links   json.RawMessage `json:"host_interfaces"`
				Omitted int             `json:"omitted_interfaces"`
			}
			if json.Unmarshal(line, &v) == nil {
				id, links = v.ID, nil
				if v.Links != nil {
					links = append([]byte(`,"host_interfaces":`), v.Links...)
				}
				if v.Omitted > 0 {
					links = fmt.Appendf(links, `,"omitted_interfaces":%d`, v.Omitted)
				}
			}
			if r.Seq == 0 { // the filter dropped it
				return nil
			}
			return fn(r, line)
		}
		if r.HostView == "" || r.HostView != id {
			return fn(r, line)
		}
		ref := []byte(`"host_view":"` + id + `"`)
		i := bytes.Index(line, ref)
		if i < 0 {
			return fn(r, line)
		}
		at := i + len(ref)
		spliced := make([]byte, 0, len(line)+len(links))
		spliced = append(append(append(spliced, line[:at]...), links...), line[at:]...)
		return fn(r, spliced)
	}
}

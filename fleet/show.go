package fleet

import (
	"container/heap"
	"fmt"
	"iter"

	"github.com/hostpass/hostpass/audit"
)

// Row is one record of the fleet view.
type Row struct {
	// Host: the host whose log held the record; for a collector's file,
	// the HOSTNAME of the message that held it (what the collector
	// recorded of the sender).
	Host string
	// Claimed: the host the record names, when it is not Host: a record
	// of another host found inside a host's log, or sent by another host
	// to the collector. It is shown under Host, never as the other host's.
	Claimed string
	// Collected: the row is from a collector's file (Host is a HOSTNAME).
	Collected bool
	// Break: for a collector's row, why it does not follow the record
	// of the seq before it that Host sent: its prev is not that record's
	// hash (a line another sender put there, or a history rewritten).
	// Only consecutive seqs are compared; nothing here verifies.
	Break string
	Entry *audit.Entry
	Line  []byte
}

// Show calls fn with every record of sources that passes f and, if host
// is not "", is that host's, merged by time: each source's records stay in
// its own order (a log's in seq order), and of the sources' next records
// the earliest goes first (the first source's on a tie). Records are
// streamed: one per source is held.
func Show(sources []Source, f audit.Filter, host string, fn func(Row) error) error {
	if f.Service != "" && !f.ServiceExact {
		// Resolved over every source: an ID prefix is one service's
		// across the fleet, or refused.
		service, err := audit.ResolveService(allFiles(sources), f.Service)
		if err != nil {
			return err
		}
		f.Service, f.ServiceExact = service, true
	}
	var h cursors
	var errs []*error
	defer func() {
		for _, c := range h {
			c.stop()
		}
	}()
	for i, s := range sources {
		if host != "" && !s.Collector && s.Host != host {
			continue // not read at all
		}
		seq, err := records(s, f)
		errs = append(errs, err)
		next, stop := iter.Pull2(seq)
		c := &cursor{src: s, order: i, next: next, stop: stop}
		if c.advance(host) {
			h = append(h, c)
		} else {
			stop()
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := h[0]
		if err := fn(c.row); err != nil {
			return err
		}
		if c.advance(host) {
			heap.Fix(&h, 0)
		} else {
			c.stop()
			heap.Pop(&h)
		}
	}
	for _, err := range errs {
		if *err != nil {
			return *err
		}
	}
	return nil
}

// cursor is a source being read, and its next row.
type cursor struct {
	src   Source
	order int
	ends  map[string]chainEnd // a collector's: each HOSTNAME's latest seq and hash
	next  func() (*audit.Entry, []byte, bool)
	stop  func()
	row   Row
}

// advance reads the source's next row of host ("" for any), and reports
// whether there was one.
func (c *cursor) advance(host string) bool {
	for {
		e, line, ok := c.next()
		if !ok {
			return false
		}
		row := Row{Host: rowHost(c.src, e), Entry: e, Line: line, Collected: c.src.Collector}
		if e.Host != row.Host {
			row.Claimed = e.Host
		}
		if c.src.Collector && e.SentHash != "" {
			row.Break = c.follows(row.Host, e)
		}
		if host != "" && row.Host != host {
			continue
		}
		c.row = row
		return true
	}
}

// chainEnd is the seq and hash of a sender's latest record.
type chainEnd struct {
	seq  uint64
	hash string
}

// follows checks a collector's record against the one of the seq before
// it that host sent, and returns why it does not follow it ("" if it
// does, or if that record was not read: lost, filtered out, a new log).
// A copy of a record already read (a resend) is not checked again.
func (c *cursor) follows(host string, e *audit.Entry) string {
	if c.ends == nil {
		c.ends = map[string]chainEnd{}
	}
	last, ok := c.ends[host]
	why := ""
	switch {
	case ok && e.Seq == last.seq+1 && e.SentPrev != last.hash:
		why = fmt.Sprintf("chain break: its prev is not the hash of seq %d as %s sent it", last.seq, host)
	case ok && e.Seq == last.seq && e.SentHash != last.hash && e.Seq != 1:
		why = fmt.Sprintf("chain break: a second record of seq %d from %s, with another hash than the first", e.Seq, host)
	}
	if (ok && e.Seq > last.seq) || e.Seq == 1 || (!ok && len(c.ends) < MaxHosts) {
		c.ends[host] = chainEnd{e.Seq, e.SentHash}
	}
	return why
}

// rowHost is the host a record of src is shown under: its log's host; for
// a collector's file, the HOSTNAME the collector recorded (the record's
// own word only for a line with none, a record alone in the file).
func rowHost(src Source, e *audit.Entry) string {
	switch {
	case !src.Collector:
		return src.Host
	case e.Sender != "":
		return e.Sender
	}
	return e.Host
}

// cursors is a heap of sources by their next row's time.
type cursors []*cursor

func (h cursors) Len() int { return len(h) }
func (h cursors) Less(i, j int) bool {
	a, b := h[i].row.Entry.Time, h[j].row.Entry.Time
	if !a.Equal(b) {
		return a.Before(b)
	}
	return h[i].order < h[j].order
}
func (h cursors) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursors) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursors) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

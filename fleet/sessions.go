package fleet

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// Session is one stretch in host mode of one container on one host:
// `--network host` (host.join to host.leave), or a hostpass network's
// endpoint (endpoint.join to endpoint.leave, or to the endpoint.stale of an
// endpoint whose Leave Docker never sent).
type Session struct {
	Host      string    `json:"host"`
	Service   string    `json:"service,omitempty"`    // swarm service name, from the task's labels
	ServiceID string    `json:"service_id,omitempty"` // its ID
	Task      string    `json:"task,omitempty"`       // the swarm task's name, or the container's
	Container string    `json:"container,omitempty"`  // the container's ID
	Mode      string    `json:"mode"`                 // "host", or "hostpass:NETWORK"
	From      time.Time `json:"from"`
	To        time.Time `json:"to,omitzero"` // zero while open
	FromSeq   uint64    `json:"from_seq,omitempty"`
	ToSeq     uint64    `json:"to_seq,omitempty"`
	// Duration: To less From (for host mode, the watcher's
	// host_mode_seconds), or for an open session up to the log's last
	// record; absent when Cut says the records cannot tell it.
	Duration *float64 `json:"duration_seconds,omitempty"`
	// Open: no leave by the log's end; Last is the log's last record.
	Open bool      `json:"open,omitempty"`
	Last time.Time `json:"last,omitzero"`
	// Cut: why no duration is claimed: the session spans a window in
	// which hostpass was not looking (a watch.gap not covered by Docker's
	// replay, a daemon restart), so its end may be missing or late.
	Cut string `json:"cut,omitempty"`
	// NoJoin: the log holds the leave but not the join (the log starts
	// after it); From is the start the leave's record gives.
	NoJoin bool `json:"no_join,omitempty"`
	// LateLeave: the leave was observed late (the watcher reconciled with
	// the running containers): TO is when hostpass saw it.
	LateLeave bool `json:"late_leave,omitempty"`
	// Stale: an endpoint.stale ended it: Docker sent no Leave for the
	// endpoint (its daemon restarted after a crash, say) and the watcher
	// found its container stopped. TO is when hostpass saw it (LateLeave);
	// Duration runs to when the container stopped, if Docker still said
	// (the record's ended_at), else Cut says the end is unknown.
	Stale bool `json:"stale,omitempty"`
	// Claimed: the host the records name, when not the log's own (or,
	// from a collector's file, not the HOSTNAME they were sent under).
	Claimed string `json:"claimed_host,omitempty"`
	// Collected: read from a collector's file: Host is the HOSTNAME the
	// collector recorded. Not in --json, whose rows from a collector and
	// from the logs it received are the same.
	Collected bool `json:"-"`
}

// SessionFilter selects sessions; empty fields match all.
type SessionFilter struct {
	Service   string // name, or ID prefix
	Container string // task or container name, or container ID prefix
	Host      string
	// Since, Until: sessions that overlap the window.
	Since, Until time.Time
	// Progress, if set, is told of the lines read (audit.Progress).
	Progress audit.Progress
	// serviceExact: Service is resolved (audit.ResolveService).
	serviceExact bool
}

func (f SessionFilter) match(s Session) bool {
	switch {
	case f.Service != "" && f.serviceExact && s.Service != f.Service && s.ServiceID != f.Service:
		return false
	case f.Service != "" && !f.serviceExact && s.Service != f.Service && (s.ServiceID == "" || !strings.HasPrefix(s.ServiceID, f.Service)):
		return false
	case f.Container != "" && s.Task != f.Container && (s.Container == "" || !strings.HasPrefix(s.Container, f.Container)):
		return false
	case f.Host != "" && s.Host != f.Host:
		return false
	case !f.Until.IsZero() && s.From.After(f.Until):
		return false
	case !f.Since.IsZero() && !s.Open && s.end().Before(f.Since):
		return false
	}
	return true
}

// end is the latest a closed session may have lasted to, by its records:
// its leave's time, or its start plus its duration, whichever is later
// (a clock stepped back can put the leave before the join).
func (s Session) end() time.Time {
	end := s.To
	if end.Before(s.From) {
		end = s.From
	}
	if s.Duration != nil {
		if e := s.From.Add(time.Duration(*s.Duration * float64(time.Second))); e.After(end) {
			end = e
		}
	}
	return end
}

// MaxHosts bounds the hosts one source's records may name: each host's
// pairing state is held to the source's end.
const MaxHosts = 1 << 14

// sessionEvents are the records sessions reads whole; others only tell
// the log's last record.
var sessionEvents = map[audit.Event]bool{
	audit.HostJoin: true, audit.HostLeave: true, audit.EndpointJoin: true, audit.EndpointLeave: true,
	audit.EndpointAttribute: true, audit.WatchGap: true, audit.Restart: true, audit.EndpointStale: true,
}

// Sessions lists the sessions of sources that pass f, by host, then start.
// Joins are paired with leaves as audit prove pairs them (audit.SessionKey,
// audit.Ends). Only the open sessions, the attributions of open endpoints
// and the sessions that pass f are held, never the records.
func Sessions(sources []Source, f SessionFilter) ([]Session, error) {
	if f.Service != "" && !f.serviceExact {
		service, err := audit.ResolveService(allFiles(sources), f.Service)
		if err != nil {
			return nil, err
		}
		f.Service, f.serviceExact = service, true
	}
	var out []Session
	from := map[string]string{} // host → the source its records came from
	for _, src := range sources {
		if f.Host != "" && !src.Collector && src.Host != f.Host {
			continue
		}
		hosts := map[string]*hostSessions{}
		err := audit.QueryRecords(src.Files, sessionEvents, f.Progress, func(e *audit.Entry, r *audit.Record) error {
			host, claimed := rowHost(src, e), ""
			if e.Host != host {
				claimed = e.Host
			}
			h := hosts[host]
			if h == nil && len(hosts) >= MaxHosts {
				return fmt.Errorf("%s: refused: records of more than %d hosts, and each host's open sessions are held while the file is read; a fleet this large is listed a part at a time: --host NAME", src.Name, MaxHosts)
			}
			if h == nil {
				h = &hostSessions{host: host, collected: src.Collector, keep: f.match, open: map[string][]*open{}, who: map[string]attribution{}, staled: map[string]bool{}, recent: map[uint64]string{}}
				hosts[host] = h
			}
			if e.Time.After(h.last) {
				h.last = e.Time // the largest: a clock stepped back moves no open session's end back
			}
			if r != nil { // a session event, whole (a line that is not a whole record is not: verify reports it)
				h.add(*r, claimed)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for host, h := range hosts {
			if f.Host != "" && host != f.Host {
				continue
			}
			if other, ok := from[host]; ok {
				return nil, fmt.Errorf("host %s's records are in %s and in %s: each of its sessions would be listed twice; give each host's trail once, its log or the collector's file that holds it", host, other, src.Name)
			}
			from[host] = src.Name
			out = append(out, h.end()...)
		}
	}
	kept := out
	sort.SliceStable(kept, func(i, j int) bool {
		a, b := kept[i], kept[j]
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		if !a.From.Equal(b.From) {
			return a.From.Before(b.From)
		}
		return a.FromSeq < b.FromSeq
	})
	return kept, nil
}

// hostSessions pairs one host's records into sessions.
type hostSessions struct {
	host      string
	collected bool // host is a collector's HOSTNAME
	last      time.Time
	open      map[string][]*open     // SessionKey → joins not yet ended, in order
	keep      func(Session) bool     // the filter: sessions it refuses are not held
	who       map[string]attribution // endpoint → its endpoint.attribute
	// staled: endpoints an endpoint.stale ended. A leave of one that
	// comes after (the container was stopping as the watcher reconciled,
	// and Docker's Leave followed) ends nothing more.
	staled map[string]bool
	// The latest seq read, and the hashes of the joins and leaves of the
	// last recentSeqs seqs before it: what again needs.
	maxSeq uint64
	recent map[uint64]string
	done   []Session
}

// attribution is what an endpoint.attribute says of who holds an
// endpoint.
type attribution struct {
	container   *audit.Container
	swarm       *audit.SwarmTask
	networkName string
}

type open struct {
	join    joinRec
	claimed string
	cut     string
}

func (h *hostSessions) add(r audit.Record, claimed string) {
	switch r.Event {
	case audit.EndpointAttribute:
		if r.EndpointID != "" {
			c := r.Container
			if c != nil {
				c = &audit.Container{ID: c.ID, Name: c.Name} // not its labels
			}
			h.who[r.EndpointID] = attribution{container: c, swarm: r.Swarm, networkName: r.NetworkName}
		}
		return
	case audit.WatchGap:
		// The watcher missed events: a container's host.leave in the
		// window may be missing, or recorded late by reconciliation.
		if r.Gap != nil && !r.Gap.Covered {
			h.cutAll("host ", fmt.Sprintf("cut by watch.gap seq %d: the watcher was not following Docker's events from %s to %s and Docker's replay did not cover it", r.Seq, r.Gap.From.Format(time.RFC3339), r.Gap.To.Format(time.RFC3339)))
		}
		return
	case audit.Restart:
		// While hostpass was down, Docker's calls to it failed: an
		// endpoint's leave may be missing. Host mode is the watcher's,
		// whose watch.gap says whether it missed anything.
		h.cutAll("ep ", fmt.Sprintf("cut by audit.restart seq %d: hostpass was not running before %s, and Docker's calls then were not recorded", r.Seq, r.Time.Format(time.RFC3339)))
		return
	}
	key := audit.SessionKey(r)
	if key == "" {
		return
	}
	if h.again(r) {
		return
	}
	js := h.open[key]
	switch r.Event {
	case audit.HostJoin, audit.EndpointJoin:
		for i := 0; r.Event == audit.HostJoin && i < len(js); i++ {
			if audit.JoinsOfOneRun(js[i].join.record(), r) {
				return // the same run recorded again (reconciled after a restart)
			}
		}
		h.open[key] = append(js, &open{join: joinOf(r), claimed: claimed})
	default:
		own := -1
		for i := len(js) - 1; i >= 0 && own < 0; i-- {
			if audit.Ends(r, js[i].join.record()) {
				own = i
			}
		}
		if own < 0 && r.Event == audit.EndpointLeave && h.staled[r.EndpointID] {
			delete(h.staled, r.EndpointID)
			return
		}
		if own < 0 {
			s := h.session(r, claimed)
			s.NoJoin, s.To, s.ToSeq = true, r.Time, r.Seq
			if start, ok := audit.LeaveStart(r); ok {
				s.From = start
			} else {
				s.From = r.Time
				s.Cut = "start unknown: the log holds no join of it, and its leave does not say when it began"
			}
			h.setDuration(&s, r)
			h.emit(s)
			return
		}
		j := js[own]
		if len(js) == 1 {
			delete(h.open, key)
		} else {
			h.open[key] = append(js[:own:own], js[own+1:]...)
		}
		s := h.session(j.join.record(), j.claimed)
		s.To, s.ToSeq, s.Cut = r.Time, r.Seq, j.cut
		h.setDuration(&s, r)
		h.emit(s)
		if r.Event == audit.EndpointLeave || r.Event == audit.EndpointStale {
			delete(h.who, r.EndpointID) // an endpoint ID is never reused
		}
		if r.Event == audit.EndpointStale {
			h.staled[r.EndpointID] = true
		}
	}
}

// joinRec is what an open session keeps of its join: what pairing and
// the session's row need, not the container's labels nor the record's
// other fields (a host with a million containers never left holds a
// million of these).
type joinRec struct {
	time                         time.Time
	startedAt                    *time.Time
	seq                          uint64
	event                        audit.Event
	networkID, endpointID        string
	containerID, containerName   string
	service, serviceID, task     string
	hasContainer, hasSwarm, isOK bool
}

func joinOf(r audit.Record) joinRec {
	j := joinRec{time: r.Time, seq: r.Seq, event: r.Event, networkID: r.NetworkID, endpointID: r.EndpointID, isOK: r.Outcome == audit.OK}
	if c := r.Container; c != nil {
		j.hasContainer, j.containerID, j.containerName, j.startedAt = true, c.ID, c.Name, c.StartedAt
	}
	if sw := r.Swarm; sw != nil {
		j.hasSwarm, j.service, j.serviceID, j.task = true, sw.ServiceName, sw.ServiceID, sw.TaskName
	}
	return j
}

// record is the join as audit's pairing and session reads it.
func (j joinRec) record() audit.Record {
	r := audit.Record{Time: j.time, Seq: j.seq, Event: j.event, NetworkID: j.networkID, EndpointID: j.endpointID}
	if j.isOK {
		r.Outcome = audit.OK
	}
	if j.hasContainer {
		r.Container = &audit.Container{ID: j.containerID, Name: j.containerName, StartedAt: j.startedAt}
	}
	if j.hasSwarm {
		r.Swarm = &audit.SwarmTask{ServiceName: j.service, ServiceID: j.serviceID, TaskName: j.task}
	}
	return r
}

// emit keeps a session found, if the filter does.
func (h *hostSessions) emit(s Session) {
	if h.keep(s) {
		h.done = append(h.done, s)
	}
}

// recentSeqs is how far back again looks: a collector's second copy of
// a message (TCP and UDP, a resend) arrives soon after the first.
const recentSeqs = 1 << 16

// again says whether a join or leave was read already: a collector may
// hold a message twice. A record of a later seq is new; of an earlier seq,
// it is new unless its hash is that of the record read at that seq (a new
// log of the same host starts again at seq 1, with other hashes).
func (h *hostSessions) again(r audit.Record) bool {
	if r.Seq <= h.maxSeq && h.recent[r.Seq] == r.Hash {
		return true
	}
	h.recent[r.Seq] = r.Hash
	if r.Seq > h.maxSeq {
		h.maxSeq = r.Seq
	}
	if len(h.recent) > 2*recentSeqs {
		for seq := range h.recent {
			if seq+recentSeqs < h.maxSeq {
				delete(h.recent, seq)
			}
		}
	}
	return false
}

// setDuration sets a closed session's duration: for host mode the
// watcher's host_mode_seconds, which it leaves out when it does not know
// when the run ended (its detail says why); for an endpoint.stale, up to
// its ended_at; else TO less FROM. A negative one (a clock stepped back)
// is no duration: Cut says why.
func (h *hostSessions) setDuration(s *Session, leave audit.Record) {
	s.LateLeave = leave.ObservedLate
	if leave.Event == audit.EndpointStale {
		// Docker's own end of the container dates it, whatever window
		// hostpass missed (the cut's worry was a leave missing or late).
		s.Stale = true
		if leave.EndedAt == nil {
			s.Cut = fmt.Sprintf("end unknown: its endpoint.stale (seq %d): Docker no longer said when the container stopped", leave.Seq)
			return
		}
		if leave.EndedAt.Before(s.From) {
			s.Cut = fmt.Sprintf("duration unknown: its endpoint.stale (seq %d) gives ended_at %s, earlier than its join (%s): the host's clock stepped back", leave.Seq, leave.EndedAt.Format(time.RFC3339Nano), s.From.Format(time.RFC3339Nano))
			return
		}
		s.Cut = ""
		d := leave.EndedAt.Sub(s.From).Seconds()
		s.Duration = &d
		return
	}
	if s.Cut != "" {
		return
	}
	if leave.Event == audit.HostLeave {
		switch secs := leave.HostModeSeconds; {
		case secs == nil:
			s.Cut = fmt.Sprintf("end unknown: its host.leave (seq %d) does not say when the run ended", leave.Seq)
			if leave.Detail != "" {
				s.Cut += ": " + leave.Detail
			}
		case *secs < 0:
			s.Cut = fmt.Sprintf("duration unknown: its host.leave (seq %d) gives host_mode_seconds %g, less than 0: the host's clock stepped back during the run", leave.Seq, *secs)
		default:
			s.Duration = secs
		}
		return
	}
	if s.To.Before(s.From) {
		s.Cut = fmt.Sprintf("duration unknown: its leave (seq %d, %s) is earlier than its join (%s): the host's clock stepped back", leave.Seq, s.To.Format(time.RFC3339Nano), s.From.Format(time.RFC3339Nano))
		return
	}
	d := s.To.Sub(s.From).Seconds()
	s.Duration = &d
}

// cutAll marks the open sessions whose key starts with kind as cut.
func (h *hostSessions) cutAll(kind, why string) {
	for key, js := range h.open {
		if !strings.HasPrefix(key, kind) {
			continue
		}
		for _, j := range js {
			if j.cut == "" {
				j.cut = why
			}
		}
	}
}

// session names what a record's session is about.
func (h *hostSessions) session(r audit.Record, claimed string) Session {
	s := Session{Host: h.host, From: r.Time, FromSeq: r.Seq, Claimed: claimed, Mode: "host", Collected: h.collected}
	c, sw := r.Container, r.Swarm
	if r.Event == audit.EndpointJoin || r.Event == audit.EndpointLeave || r.Event == audit.EndpointStale {
		s.Mode = "hostpass:" + short(r.NetworkID)
		c, sw = nil, nil
		if a, ok := h.who[r.EndpointID]; ok {
			c, sw = a.container, a.swarm
			if a.networkName != "" {
				s.Mode = "hostpass:" + a.networkName
			}
		} else if r.Event == audit.EndpointStale { // its join and attribution are before the log
			c, sw = &audit.Container{ID: r.Container.ID, Name: r.Container.Name}, r.Swarm
			if r.NetworkName != "" {
				s.Mode = "hostpass:" + r.NetworkName
			}
		}
	}
	if c != nil {
		s.Task, s.Container = c.Name, c.ID
		if s.Task == "" {
			s.Task = short(c.ID)
		}
	}
	if sw != nil {
		s.Service, s.ServiceID = sw.ServiceName, sw.ServiceID
		if sw.TaskName != "" {
			s.Task = sw.TaskName
		}
	}
	return s
}

// end returns the host's sessions, the open ones last, up to the log's
// last record.
func (h *hostSessions) end() []Session {
	out := h.done
	for _, js := range h.open {
		for _, j := range js {
			s := h.session(j.join.record(), j.claimed)
			s.Open, s.Last, s.Cut = true, h.last, j.cut
			switch {
			case s.Cut != "":
			case h.last.Before(s.From):
				s.Cut = fmt.Sprintf("duration unknown: the host's latest record (%s) is earlier than its join: the host's clock stepped back", h.last.Format(time.RFC3339Nano))
			default:
				d := h.last.Sub(s.From).Seconds()
				s.Duration = &d
			}
			if h.keep(s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

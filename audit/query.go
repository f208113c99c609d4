package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hostpass/hostpass/errclass"
)

// Filter selects records. Empty fields match everything. Network matches a
// network ID, an ID prefix, or a network name (names come from the
// watcher's attribution records). Endpoint matches an ID or prefix. Container
// matches a container ID, prefix or name: its attribution and host-mode
// records, and every record of the endpoints attributed to it. Event matches
// an event or a prefix of one ("endpoint." for all endpoint events).
// Service matches a swarm service's name, ID or ID prefix (a record's
// swarm, as its task's container labels state it): its tasks' watcher
// records, and every record of the endpoints attributed to them.
type Filter struct {
	Network, Endpoint, Container, Event, Service string
	// ServiceExact: Service is resolved (ResolveService) and matches a
	// service's name or ID exactly, not an ID prefix.
	ServiceExact bool
	// Host matches the host a record names, exactly.
	Host         string
	Since, Until time.Time
	// Interfaces: records that name a host view (host_view) are handed
	// over with the view's host_interfaces spliced in after host_view (the
	// line is then no longer the one its hash covers).
	Interfaces bool
	// Progress, if set, is told of the lines read as the query goes
	// (read.go), in each of its passes: a Network or a Container makes
	// two, so the log's bytes are told twice.
	Progress Progress

	// swarmOnly: only records that name a swarm task (Query's first pass,
	// resolving Service).
	swarmOnly bool

	// Filled by Query's first pass over the log.
	networkIDs map[string]bool // networks named Network
	endpoints  map[string]bool // endpoints attributed to Container
	serviceEPs map[string]bool // endpoints attributed to Service's tasks
}

// Entry is the part of a record that show filters on and prints. Decoding
// only these fields skips the costly rest (options, host_interfaces).
type Entry struct {
	Time       time.Time `json:"time"`
	Seq        uint64    `json:"seq"`
	Event      Event     `json:"event"`
	Host       string    `json:"host"`
	Outcome    Outcome   `json:"outcome"`
	Error      string    `json:"error"`
	NetworkID  string    `json:"network_id"`
	EndpointID string    `json:"endpoint_id"`
	Tag        string    `json:"tag"`
	Adopted    bool      `json:"adopted"`
	Detail     string    `json:"detail"`
	Container  *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"container"`
	Swarm *struct {
		ServiceName string `json:"service_name"`
		ServiceID   string `json:"service_id"`
	} `json:"swarm"`
	NetworkName  string `json:"network_name"`
	ObservedLate bool   `json:"observed_late"`
	Action       string `json:"action"`
	HostView     string `json:"host_view"`
	// Sender: for a record read from a collector's file, the HOSTNAME of
	// the message that held it (what the collector recorded of who sent
	// it, beside what the record says of itself); "" in a log.
	Sender string `json:"-"`
	// SentPrev, SentHash: the prev and hash the collector's line gives
	// in its structured data (what the sender said of its chain).
	SentPrev, SentHash string `json:"-"`
}

func (f Filter) isContainer(r *Entry) bool {
	return r.Container != nil && (strings.HasPrefix(r.Container.ID, f.Container) || r.Container.Name == f.Container)
}

func (f Filter) isService(r *Entry) bool {
	return r.Swarm != nil && f.serviceIs(r.Swarm.ServiceID, r.Swarm.ServiceName)
}

func (f Filter) serviceIs(id, name string) bool {
	if f.ServiceExact {
		return name == f.Service || id == f.Service
	}
	return name == f.Service || strings.HasPrefix(id, f.Service)
}

// ResolveService resolves a --service as docker resolves a service: an
// exact ID, else an exact name, else an ID prefix if one service's alone;
// a prefix of several services' IDs is refused, naming them. A name of no
// service in files comes back as given (it matches nothing).
func ResolveService(files []string, name string) (string, error) {
	services := map[string]string{} // ID → name
	err := queryAll(files, Filter{swarmOnly: true}, func(r *Entry, _ []byte) error {
		if r.Swarm != nil {
			services[r.Swarm.ServiceID] = r.Swarm.ServiceName
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return resolveService(services, name)
}

func resolveService(services map[string]string, name string) (string, error) {
	if _, ok := services[name]; ok {
		return name, nil
	}
	var prefixed []string
	for id, n := range services {
		if n == name {
			return name, nil
		}
		if id != "" && strings.HasPrefix(id, name) {
			prefixed = append(prefixed, id)
		}
	}
	switch len(prefixed) {
	case 0:
		return name, nil
	case 1:
		return prefixed[0], nil
	}
	sort.Strings(prefixed)
	for i, id := range prefixed {
		prefixed[i] = fmt.Sprintf("%s (%s)", id, services[id])
	}
	return "", errclass.InvalidParameter(fmt.Errorf("--service %s: refused: no service has that name or ID, and it is the start of %d services' IDs: %s; give a service's name, its whole ID, or more of it", name, len(prefixed), strings.Join(prefixed, ", ")))
}

// Match reports whether r passes the filter.
func (f Filter) Match(r *Entry) bool {
	switch {
	case f.Network != "" && !strings.HasPrefix(r.NetworkID, f.Network) && r.NetworkName != f.Network && !f.networkIDs[r.NetworkID]:
		return false
	case f.Container != "" && !f.isContainer(r) && !f.endpoints[r.EndpointID]:
		return false
	case f.Service != "" && !f.isService(r) && !f.serviceEPs[r.EndpointID]:
		return false
	case f.Endpoint != "" && !strings.HasPrefix(r.EndpointID, f.Endpoint):
		return false
	case f.Event != "" && !strings.HasPrefix(string(r.Event), f.Event):
		return false
	case f.Host != "" && r.Host != f.Host:
		return false
	case !f.Since.IsZero() && r.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && r.Time.After(f.Until):
		return false
	}
	return true
}

// mayMatch is a cheap test on the raw line: whatever it rejects, Match
// would reject too, so most lines of a large log are never decoded. It looks
// for each value as the log writes it (json.Marshal escapes <, >, &, quotes
// and more), not as the filter spells it.
func (f Filter) mayMatch(line []byte) bool {
	if f.swarmOnly && !bytes.Contains(line, []byte(`"swarm":{`)) {
		return false
	}
	if f.Endpoint != "" && !holds(line, "", f.Endpoint) {
		return false
	}
	if f.Network != "" && !holds(line, "", f.Network) && !containsAny(line, f.networkIDs) {
		return false
	}
	if f.Container != "" && !holds(line, "", f.Container) && !containsAny(line, f.endpoints) {
		return false
	}
	if f.Service != "" && !holds(line, "", f.Service) && !containsAny(line, f.serviceEPs) {
		return false
	}
	if f.Host != "" && !holds(line, `"host":"`, f.Host) {
		return false
	}
	if f.Event != "" && !holds(line, `"event":"`, f.Event) {
		return false
	}
	return true
}

func containsAny(line []byte, set map[string]bool) bool {
	for s := range set {
		if holds(line, "", s) {
			return true
		}
	}
	return false
}

// holds reports whether line may hold prefix followed by s, s written as
// the content of a JSON string. The common case, plain ASCII, costs what
// bytes.Contains does.
func holds(line []byte, prefix, s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			if strings.ContainsRune(s, utf8.RuneError) {
				return true // written as itself or as \ufffd: decode and see
			}
			q, _ := json.Marshal(s)
			return bytes.Contains(line, append([]byte(prefix), q[1:len(q)-1]...))
		}
	}
	return bytes.Contains(line, []byte(prefix+s))
}

// Query calls fn with every record of files that passes f, in log order.
// Lines are decoded on every core, ahead of fn. A network name or a
// container or a service takes a first pass, to learn the network IDs with
// that name and the endpoints attributed to that container or service.
func Query(files []string, f Filter, fn func(r *Entry, line []byte) error) error {
	if f.Network != "" || f.Container != "" || f.Service != "" {
		f.networkIDs, f.endpoints, f.serviceEPs = map[string]bool{}, map[string]bool{}, map[string]bool{}
		first := Filter{Event: string(EndpointAttribute), Progress: f.Progress}
		services := map[string]string{}     // service ID → name, to resolve Service
		epService := map[string][2]string{} // endpoint → the service ID and name of its task
		if f.Service != "" && !f.ServiceExact {
			first.Event, first.swarmOnly = "", true // every record a task made names its service
		}
		err := queryAll(files, first, func(r *Entry, _ []byte) error {
			if r.Swarm != nil && f.Service != "" {
				services[r.Swarm.ServiceID] = r.Swarm.ServiceName
			}
			if r.Event != EndpointAttribute {
				return nil
			}
			if f.Network != "" && r.NetworkName == f.Network {
				f.networkIDs[r.NetworkID] = true
			}
			if f.Container != "" && f.isContainer(r) && r.EndpointID != "" {
				f.endpoints[r.EndpointID] = true
			}
			if f.Service != "" && r.Swarm != nil && r.EndpointID != "" {
				epService[r.EndpointID] = [2]string{r.Swarm.ServiceID, r.Swarm.ServiceName}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if f.Service != "" && !f.ServiceExact {
			if f.Service, err = resolveService(services, f.Service); err != nil {
				return err
			}
			f.ServiceExact = true
		}
		for ep, s := range epService {
			if f.serviceIs(s[0], s[1]) {
				f.serviceEPs[ep] = true
			}
		}
	}
	return queryAll(files, f, fn)
}

func queryAll(files []string, f Filter, fn func(r *Entry, line []byte) error) error {
	if f.Interfaces {
		fn = withInterfaces(fn)
	}
	for _, path := range files {
		if err := queryFile(path, f, fn); err != nil {
			return err
		}
	}
	return nil
}

func queryFile(path string, f Filter, fn func(r *Entry, line []byte) error) error {
	decodeAll := func(b *batch) {
		b.entries = make([]*Entry, len(b.lines))
		for i, line := range b.lines {
			if i == len(b.lines)-1 && !b.complete {
				break // a torn last line: verify reports it
			}
			rec, e := entryOf(f, line)
			if rec == nil {
				continue
			}
			b.lines[i], b.entries[i] = rec, e // a collector's line: the record, as --json prints it
		}
	}
	return longLineAt(path, eachBatchTold(path, decodeAll, func(b *batch) error {
		for i, e := range b.entries {
			if f.Interfaces && e == nil && isView(b.lines[i]) {
				e = &Entry{Event: HostView} // not shown, but its links are
			}
			if e != nil {
				if err := fn(e, b.lines[i]); err != nil {
					return err
				}
			}
		}
		return nil
	}, f.Progress))
}

// longLineAt names the file and line of a line too long to read (a
// collector's file holds other programs' messages too), so that the user
// can find it; other errors come back as they are.
func longLineAt(path string, err error) error {
	if !errors.Is(err, errLongLine) {
		return err
	}
	n := 1
	if r, _, oerr := openCounted(path); oerr == nil {
		// Counted again without holding any line: the read that failed
		// did not say where, and this is its error path alone.
		br := bufio.NewReaderSize(r, 64<<10)
		for long := 0; ; {
			chunk, err := br.ReadSlice('\n')
			if long += len(chunk); long > maxLine {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil {
				break
			}
			n, long = n+1, 0
		}
		r.Close()
	}
	return fmt.Errorf("%s line %d: %w, and a record is at most %d KiB: no log holds such a line; remove it (or the file's lines from it on) and read again", path, n, err, MaxRecord>>10)
}

// QueryRecords calls fn with every record of files, in log order, as an
// Entry; records of the events in whole come decoded whole as well (r is
// nil for the others). Both are decoded on every core, ahead of fn.
func QueryRecords(files []string, whole map[Event]bool, progress Progress, fn func(e *Entry, r *Record) error) error {
	decodeAll := func(b *batch) {
		b.entries, b.records = make([]*Entry, len(b.lines)), make([]*Record, len(b.lines))
		for i, line := range b.lines {
			if i == len(b.lines)-1 && !b.complete {
				break // a torn last line: verify reports it
			}
			rec, e := entryOf(Filter{}, line)
			if rec == nil {
				continue
			}
			b.entries[i] = e
			if e != nil && whole[e.Event] {
				var r Record
				if json.Unmarshal(rec, &r) == nil {
					b.records[i] = &r
				}
			}
		}
	}
	for _, path := range files {
		err := eachBatchTold(path, decodeAll, func(b *batch) error {
			for i, e := range b.entries {
				if e != nil {
					if err := fn(e, b.records[i]); err != nil {
						return err
					}
				}
			}
			return nil
		}, progress)
		if err != nil {
			return longLineAt(path, err)
		}
	}
	return nil
}

// entryOf reads one line of a log or of a collector's file: the record's
// own line (nil for a line that holds none), and its entry if it passes f,
// with what the collector recorded of the message that carried it.
func entryOf(f Filter, line []byte) ([]byte, *Entry) {
	rec, sent := recordLine(line)
	if rec == nil {
		return nil, nil
	}
	e := decode(f, rec)
	if e != nil {
		e.Sender, e.SentPrev, e.SentHash = sent.host, sent.prev, sent.hash
	}
	return rec, e
}

// decode returns the line's entry if it passes f, else nil.
func decode(f Filter, line []byte) *Entry {
	if !f.mayMatch(line) {
		return nil
	}
	var e Entry
	err := json.Unmarshal(line, &e)
	var wrongType *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &wrongType) || !f.Match(&e) {
		return nil // a line that is not JSON: verify reports it
	}
	// A member of an unexpected type (verify passes a line whose hash
	// holds) leaves that field empty; the record is still shown.
	return &e
}

// followPoll is how often Follow looks for new records.
const followPoll = 200 * time.Millisecond

// Follow calls fn with the records appended to the log at path from now on,
// until ctx ends. It follows the log across rotation.
func Follow(ctx context.Context, path string, f Filter, fn func(r *Entry, line []byte) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { file.Close() }()
	if _, err := file.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	if f.Interfaces {
		fn = withInterfaces(fn)
	}
	var partial []byte
	skip := false // in a line longer than maxLine: not a record, not held
	buf := make([]byte, 1<<20)
	for {
		n, err := file.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if skip {
				i := bytes.IndexByte(chunk, '\n')
				if i < 0 {
					continue
				}
				chunk, skip = chunk[i+1:], false
			}
			partial = append(partial, chunk...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				e := decode(f, partial[:i])
				if f.Interfaces && e == nil && isView(partial[:i]) {
					e = &Entry{Event: HostView}
				}
				if e != nil {
					if err := fn(e, partial[:i]); err != nil {
						return err
					}
				}
				partial = partial[i+1:]
			}
			if len(partial) > maxLine {
				partial, skip = nil, true
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		// At the end: has the file been rotated away?
		if rotated(file, path) {
			next, err := os.Open(path)
			if err == nil {
				file.Close()
				file, partial, skip = next, nil, false
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}

// rotated reports whether path now names a different file than f.
func rotated(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	if err1 != nil || err2 != nil {
		return false
	}
	return !os.SameFile(a, b) // portable: auditors follow logs on their own machines too
}

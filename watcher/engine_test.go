package watcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// fakeDocker answers the Engine API on a unix socket the way dockerd does,
// for the real client under NewDockerEngine: it reports its API version on
// /_ping, refuses the versions it does not speak with dockerd's own words,
// and serves events as JSON lines. paths: what the client asked for.
type fakeDocker struct {
	events []byte // what /events sends
	// then: the API version the engine speaks once its first event stream
	// has ended (dockerd upgraded or downgraded while hostpass runs), and
	// later: what its later streams send, each held open until the client
	// leaves. "": the engine does not change.
	then  string
	later []byte
	// inspects: container ID → its inspect, beside hmInspect.
	inspects map[string]string

	mu      sync.Mutex
	api     string   // the engine's API version
	paths   []string // request paths with their queries
	streams int      // event streams served
	stopped []string // containers asked to stop
}

// minAPI is the oldest API version Docker 29.0 to 29.2 serve (their default
// DOCKER_MIN_API_VERSION); dockerd 20.10 serves every version up to its own.
const minAPI = "1.44"

// older compares two API versions "1.N".
func older(a, b string) bool {
	minor := func(v string) int {
		n, _ := strconv.Atoi(strings.TrimPrefix(v, "1."))
		return n
	}
	return minor(a) < minor(b)
}

func (f *fakeDocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path+"?"+r.URL.RawQuery)
	api := f.api
	f.mu.Unlock()
	w.Header().Set("Api-Version", api)
	w.Header().Set("Content-Type", "application/json")
	p := r.URL.Path
	if v, rest, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/"); ok && strings.HasPrefix(v, "v1.") {
		p = "/" + rest
		asked := strings.TrimPrefix(v, "v")
		switch {
		case older(api, asked):
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"message":"client version %s is too new. Maximum supported API version is %s"}`, asked, api)
			return
		case !older(api, minAPI) && older(asked, minAPI):
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"message":"client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version"}`, asked, minAPI)
			return
		}
	}
	id, _ := strings.CutSuffix(strings.TrimPrefix(p, "/containers/"), "/json")
	inspect, known := f.inspects[id]
	if id == hmID {
		inspect, known = hmInspect, true
	}
	switch {
	case p == "/_ping":
		w.Write([]byte("OK"))
	case p == "/events" && r.URL.Query().Get("until") != "": // Died's question
		for _, line := range bytes.SplitAfter(f.events, []byte("\n")) {
			if bytes.Contains(line, []byte(`"Action":"die"`)) {
				w.Write(line)
			}
		}
	case p == "/events":
		f.mu.Lock()
		f.streams++
		first := f.streams == 1
		f.mu.Unlock()
		if first || f.then == "" {
			w.Write(f.events)
			if f.then != "" {
				f.mu.Lock()
				f.api = f.then
				f.mu.Unlock()
			}
			return
		}
		w.Write(f.later)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case p == "/containers/json":
		w.Write([]byte("[]"))
	case known && r.Method == http.MethodGet:
		w.Write([]byte(inspect))
	case strings.HasPrefix(p, "/containers/") && strings.HasSuffix(p, "/stop") && r.Method == http.MethodPost:
		f.mu.Lock()
		f.stopped = append(f.stopped, strings.TrimSuffix(strings.TrimPrefix(p, "/containers/"), "/stop"))
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case p == "/networks/"+hpNet:
		w.Write([]byte(`{"Name":"hp","Id":"` + hpNet + `","Driver":"hostpass","Labels":{"env":"prod"}}`))
	case p == "/containers/gone/json":
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"No such container: gone"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"page not found"}`))
	}
}

func (f *fakeDocker) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

func (f *fakeDocker) stops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stopped...)
}

// serve starts f on a socket in a temporary folder and returns the
// socket's path.
func (f *fakeDocker) serve(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return path
}

// The container of testdata/events-20.10.jsonl (recorded from `docker run
// --rm --network host --name hm bb:1 true` on dockerd 20.10.24), and an
// inspect of it in dockerd's shape, trimmed to what the watcher reads; its
// PortBindings are as dockerd 20.10 wrote them for `-p 18080:80 -p
// 127.0.0.1:9090:90/udp` (HostIp "" for every address).
const (
	hmID      = "43aa5511f760e3ae303341ad7bf0601caa0beee1275244205e2d91a01c740c7d"
	hostNetID = "6ec0b66d40dfb28d4ac42f64de5a4def64758939db4c634a24c5fa569fce51fd"
	hmInspect = `{"Id":"` + hmID + `","Name":"/hm","Image":"sha256:5d7956e4fe8f","State":{"Running":true,` +
		`"StartedAt":"2026-11-28T09:10:14.9519Z","FinishedAt":"0001-01-01T00:00:00Z"},"Config":{"Image":"bb:1","Labels":{"team":"web"}},` +
		`"HostConfig":{"NetworkMode":"host","Privileged":false,"CapAdd":null,"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"18080"}],` +
		`"90/udp":[{"HostIp":"127.0.0.1","HostPort":"9090"}]}},"NetworkSettings":{"Networks":{"host":{"NetworkID":"` + hostNetID + `","EndpointID":"ep1"}}}}`
)

// withoutLegacyFields is events as API 1.52 and later send them: no
// status, id or from.
func withoutLegacyFields(t *testing.T, lines []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, line := range bytes.Split(bytes.TrimSpace(lines), []byte("\n")) {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber() // timeNano is past float64's precision
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		delete(m, "status")
		delete(m, "id")
		delete(m, "from")
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(append(b, '\n'))
	}
	return out.Bytes()
}

// The watcher reads dockerd 20.10's events (legacy and new fields, API
// 1.41) and Docker 29's (new fields only, API 1.52) alike, through the real
// client, which negotiates each engine's own API version.
func TestDockerEngineReadsBothShapesOfEvents(t *testing.T) {
	recorded, err := os.ReadFile(filepath.Join("testdata", "events-20.10.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	at := func(nano int64) time.Time { return time.Unix(0, nano).UTC() }
	want := []Event{
		{Time: at(1795857014830806157), Type: "network", Action: "connect", NetworkID: hostNetID, NetworkName: "host", NetworkType: "host", ContainerID: hmID},
		{Time: at(1795857014951993169), Type: "container", Action: "start", ContainerID: hmID, Name: "hm", Image: "bb:1"},
		{Time: at(1795857014972314213), Type: "container", Action: "die", ContainerID: hmID, Name: "hm", Image: "bb:1"},
		{Time: at(1795857014982108697), Type: "network", Action: "disconnect", NetworkID: hostNetID, NetworkName: "host", NetworkType: "host", ContainerID: hmID},
	}
	for _, engine := range []struct {
		name, api string
		events    []byte
	}{
		{"20.10_legacy_and_new_fields", "1.41", recorded},
		{"29_new_fields_only", "1.52", withoutLegacyFields(t, recorded)},
	} {
		t.Run(engine.name, func(t *testing.T) {
			if engine.api == "1.52" && bytes.Contains(engine.events, []byte(`"status"`)) {
				t.Fatal("the 29 shape still carries status")
			}
			fake := &fakeDocker{api: engine.api, events: engine.events}
			d, err := NewDockerEngine(fake.serve(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			since := at(1795857014000000000)
			evs, errs := d.Events(ctx, since)
			var got []Event
			for e := range evs {
				got = append(got, e)
			}
			if err := <-errs; err == nil || !strings.Contains(err.Error(), "EOF") {
				t.Errorf("stream ended with %v, want EOF (the fake's stream ends)", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("events\n got %+v\nwant %+v", got, want)
			}

			died, err := d.Died(ctx, hmID, since)
			if err != nil || !died.Equal(want[2].Time) {
				t.Errorf("Died = %v, %v; want %v", died, err, want[2].Time)
			}

			c, err := d.Container(ctx, hmID)
			if err != nil {
				t.Fatal(err)
			}
			wantPorts := []string{"127.0.0.1:9090->90/udp", ":18080->80/tcp"} // sorted
			if c.Name != "hm" || c.Image != "bb:1" || c.Labels["team"] != "web" || !c.Running || c.NetworkMode != "host" ||
				!reflect.DeepEqual(c.Ports, wantPorts) || c.Endpoints[hostNetID] != "ep1" || !c.StartedAt.Equal(time.Date(2026, 11, 28, 9, 10, 14, 951900000, time.UTC)) {
				t.Errorf("inspect %+v, want hm (bb:1, label team=web) running in host mode, ports %q, endpoint ep1", c, wantPorts)
			}
			if _, err := d.Container(ctx, "gone"); !errors.Is(err, ErrNoSuchContainer) {
				t.Errorf("inspect of a removed container: %v, want ErrNoSuchContainer", err)
			}

			asked := fake.asked()
			var events []string
			for _, p := range asked {
				if strings.Contains(p, "/events") {
					events = append(events, p)
				}
			}
			if len(events) != 2 || !strings.HasPrefix(events[0], "/v"+engine.api+"/events?") ||
				!strings.Contains(events[0], "since=1795857014.000000000") ||
				!strings.Contains(events[0], `filters=`+`%7B%22event%22%3A%7B%22connect%22%3Atrue%2C%22die%22%3Atrue%2C%22disconnect%22%3Atrue%2C%22start%22%3Atrue%7D%2C%22type%22%3A%7B%22container%22%3Atrue%2C%22network%22%3Atrue%7D%7D`) {
				t.Errorf("event requests %q: want the engine's own API version (%s), since, and the four actions of networks and containers", events, engine.api)
			}
		})
	}
}

// wireLines is es as an engine of shape sh writes them on /events.
func wireLines(t *testing.T, sh shape, es ...Event) []byte {
	t.Helper()
	var out []byte
	for _, e := range es {
		b, err := json.Marshal(sh.wire(t, e))
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, b...), '\n')
	}
	return out
}

// runOn starts a watcher whose engine is NewDockerEngine over fake.
func runOn(t *testing.T, fake *fakeDocker, policy string, stop bool) *harness {
	t.Helper()
	h := newHarness(t, policy, stop)
	d, err := NewDockerEngine(fake.serve(t))
	if err != nil {
		t.Fatal(err)
	}
	h.engine = d
	h.restart()
	t.Cleanup(h.run())
	return h
}

// oddID's inspect is what dockerd 20.10 gives for a container created
// through the raw API with `"PortBindings":{"80/tcp":[{"HostIp":"localhost",
// "HostPort":"8080"}]}` and `"Dns":["resolver.example"]`: it takes any text
// there, and the API types parse both as IP addresses.
const (
	oddID      = "0dd5511f760e3ae303341ad7bf0601caa0beee1275244205e2d91a01c740c7d"
	oddInspect = `{"Id":"` + oddID + `","Name":"/odd","Image":"sha256:5d7956e4fe8f","State":{"Running":true,` +
		`"StartedAt":"2026-11-28T09:10:14.9519Z","FinishedAt":"0001-01-01T00:00:00Z"},"Config":{"Image":"bb:1","Labels":{"team":"web"}},` +
		`"HostConfig":{"NetworkMode":"hp","Privileged":false,"CapAdd":null,"Dns":["resolver.example"],` +
		`"PortBindings":{"80/tcp":[{"HostIp":"localhost","HostPort":"8080"}]}},` +
		`"NetworkSettings":{"Networks":{"hp":{"NetworkID":"` + hpNet + `","EndpointID":"ep-odd"}}}}`
)

// A container whose inspect the API types refuse (a host address or a DNS
// server that is no IP address, as dockerd 20.10 takes them) is attributed
// all the same, with its ports as Docker printed them, and stopped when the
// policy says so.
func TestWatcherAttributesAnInspectTheAPITypesRefuse(t *testing.T) {
	connect := Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, NetworkName: "hp", NetworkType: "hostpass", ContainerID: oddID}
	fake := &fakeDocker{api: "1.41", inspects: map[string]string{oddID: oddInspect}, then: "1.41",
		later: wireLines(t, shapes[0], connect)}
	h := runOn(t, fake, "label:team=payments", true)
	recs := h.waitFor("endpoint.attribute and policy.violation", func(r []audit.Record) bool { return count(r, audit.PolicyViolation) == 1 })
	if names(recs) != "endpoint.attribute policy.violation" {
		t.Fatalf("records: %s, want endpoint.attribute policy.violation", names(recs))
	}
	a, v := recs[0], recs[1]
	wantPorts := []string{"localhost:8080->80/tcp"}
	if a.Container.Name != "odd" || a.Container.Image != "bb:1" || !reflect.DeepEqual(a.Container.Ports, wantPorts) ||
		a.EndpointID != "ep-odd" || a.NetworkName != "hp" || a.Detail != "" {
		t.Errorf("endpoint.attribute %+v %+v: want odd (bb:1), ports %q, endpoint ep-odd on hp", a, a.Container, wantPorts)
	}
	if v.Container.Name != "odd" || v.Action != audit.ActionStopped {
		t.Errorf("policy.violation %+v: want odd, stopped", v)
	}
	if got := fake.stops(); !reflect.DeepEqual(got, []string{oddID}) {
		t.Errorf("stopped %q, want the odd container", got)
	}
}

// An inspect the watcher cannot read at all is recorded once as what it
// is, not asked again and again as if Docker were down.
func TestWatcherRecordsAnUnreadableInspectOnce(t *testing.T) {
	connect := Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, NetworkName: "hp", NetworkType: "hostpass", ContainerID: oddID}
	fake := &fakeDocker{api: "1.41", inspects: map[string]string{oddID: `{"Id":"` + oddID + `","State":{"Running":"yes"}}`}, then: "1.41",
		later: wireLines(t, shapes[0], connect)}
	h := runOn(t, fake, "all", false)
	recs := h.waitFor("endpoint.attribute", func(r []audit.Record) bool { return count(r, audit.EndpointAttribute) == 1 })
	want := "the container could not be inspected: cannot read Docker's inspect of container " + oddID
	if d := recs[0].Detail; !strings.HasPrefix(d, want) || !strings.Contains(d, "cannot unmarshal string") {
		t.Errorf("detail %q, want it to start %q and name the field Docker sent in a shape it does not document", d, want)
	}
	n := 0
	for _, p := range fake.asked() {
		if strings.HasSuffix(p, "/containers/"+oddID+"/json?") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("the container was inspected %d times, want 2 (the client's typed inspect, then the reply read raw)", n)
	}
}

// The watcher renegotiates the API version at each subscription: dockerd
// upgraded (20.10 to 29) or downgraded (29 to 20.10) while hostpass runs
// refuses the version it used to speak.
func TestWatcherRenegotiatesWhenDockerChanges(t *testing.T) {
	recorded, err := os.ReadFile(filepath.Join("testdata", "events-20.10.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	connect, _, _ := bytes.Cut(recorded, []byte("\n")) // hm joins the host's network
	for _, c := range []struct{ name, from, to string }{{"20.10_to_29", "1.41", "1.52"}, {"29_to_20.10", "1.52", "1.41"}} {
		t.Run(c.name, func(t *testing.T) {
			fake := &fakeDocker{api: c.from, then: c.to, later: append(connect, '\n')}
			h := runOn(t, fake, "all", false)
			recs := h.waitFor("host.join", func(r []audit.Record) bool { return count(r, audit.HostJoin) == 1 })
			if recs[0].Container.Name != "hm" || recs[0].Container.Image != "bb:1" {
				t.Errorf("host.join %+v: want hm (bb:1)", recs[0].Container)
			}
			var streams []string
			for _, p := range fake.asked() {
				if strings.Contains(p, "/events?") {
					streams = append(streams, strings.SplitAfter(p, "/events")[0])
				}
			}
			if len(streams) < 2 || streams[0] != "/v"+c.from+"/events" || streams[len(streams)-1] != "/v"+c.to+"/events" {
				t.Errorf("event streams %q: want the first at %s, the last at %s", streams, c.from, c.to)
			}
		})
	}
}

// While Docker answers its pings with errors, every retry of Events makes a
// new client; each is closed, so the retries leave no connection open on
// Docker's socket (before, each left its keep-alive connection behind).
func TestEventsRetriesLeaveNoConnectionOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"message":"starting up"}`))
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	d, err := NewDockerEngine(path)
	if err != nil {
		t.Fatal(err)
	}
	const tries = 20
	for range tries {
		if _, errs := d.Events(context.Background(), time.Time{}); <-errs == nil {
			t.Fatal("Events: no error from an engine that answers every ping with 500")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n > 0 {
		t.Errorf("%d connections still open on Docker's socket after %d failed subscriptions, want 0", n, tries)
	}
}

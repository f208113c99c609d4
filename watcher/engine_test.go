package watcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDocker answers the Engine API on a unix socket the way dockerd does,
// for the real client under NewDockerEngine: it reports its API version on
// /_ping and serves events as JSON lines. paths: what the client asked for.
type fakeDocker struct {
	api    string // the engine's API version
	events []byte // what /events sends

	mu    sync.Mutex
	paths []string // request paths with their queries
}

func (f *fakeDocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path+"?"+r.URL.RawQuery)
	f.mu.Unlock()
	w.Header().Set("Api-Version", f.api)
	// Any version's path is served: the test asserts which one was asked.
	p := r.URL.Path
	if v, rest, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/"); ok && strings.HasPrefix(v, "v1.") {
		p = "/" + rest
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
		w.Header().Set("Content-Type", "application/json")
		w.Write(f.events)
	case p == "/containers/"+hmID+"/json":
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(hmInspect))
	case p == "/containers/gone/json":
		w.Header().Set("Content-Type", "application/json")
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

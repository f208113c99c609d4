package watcher

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
)

// fakeEngine stands in for Docker: containers and networks to inspect, and
// event streams the test feeds.
type fakeEngine struct {
	mu         sync.Mutex
	containers map[string]Container
	networks   map[string]Network
	streams    chan stream // one per Events call
	sinces     []time.Time
	stopped    []string
	// slow: inspects of these containers wait until the channel is closed.
	slow map[string]chan struct{}
	// latency: every inspect takes this long, as Docker's do.
	latency time.Duration
	lists   int // calls of Running
	// unreachable: this many inspects fail as when Docker restarts.
	unreachable int
	// died: the die events Docker remembers, by container.
	died map[string]time.Time
	// stopErr: Stop fails with it, as when Docker cannot stop a container.
	stopErr error
	// history: the times of the events Docker's history holds, oldest
	// first, at most historySize (see publish); remembersErr: Remembers
	// fails with it.
	history      []time.Time
	remembersErr error
	// down: Running fails, as while dockerd is stopped.
	down bool
	// inspects: the calls of Container, by container; networkInspects:
	// the calls of Network.
	inspects        map[string]int
	networkInspects int
}

// historySize is how many events dockerd keeps for replays: eventsLimit in
// moby's daemon/events/events.go, 256 in dockerd 20.10 and Docker 29.
const historySize = 256

// publish notes that Docker logged an event at at (of any kind: the
// history is not filtered), forgetting the oldest past historySize.
func (f *fakeEngine) publish(at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.history = append(f.history, at)
	if len(f.history) > historySize {
		f.history = f.history[len(f.history)-historySize:]
	}
}

// forget empties the history, as a dockerd restart does.
func (f *fakeEngine) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.history = nil
}

func (f *fakeEngine) Remembers(_ context.Context, at time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.remembersErr != nil {
		return false, f.remembersErr
	}
	for _, t := range f.history {
		if t.Equal(at) {
			return true, nil
		}
	}
	return false, nil
}

// stream is one subscription: the test sends on events what Docker would
// (see harness.wire), and the watcher reads it through relay, as it reads a
// real engine's.
type stream struct {
	events chan events.Message
	errs   chan error
}

// shape is how an engine writes an event on the wire.
type shape struct {
	name string
	// legacy: container events carry the legacy status, id and from fields
	// beside Type, Action and Actor, as every engine did before API 1.52
	// (dockerd 20.10 at API 1.41 here). From 1.52 (Docker 29) they are gone.
	legacy bool
}

var shapes = []shape{{"20.10_legacy_and_new_fields", true}, {"29_new_fields_only", false}}

// eachShape runs test once for each shape of events: what the watcher does
// must not depend on which one the engine sends.
func eachShape(t *testing.T, test func(t *testing.T, sh shape)) {
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) { test(t, sh) })
	}
}

// wireEvent is an event as dockerd writes it, field for field (recorded
// from dockerd 20.10: network events never carried the legacy fields).
type wireEvent struct {
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	Type   string
	Action string
	Actor  wireActor
	Scope  string `json:"scope"`
	Time   int64  `json:"time"`
	Nano   int64  `json:"timeNano"`
}

type wireActor struct {
	ID         string
	Attributes map[string]string
}

// wire is e as an engine sends it in the shape sh, read back the way the
// client reads it.
func (sh shape) wire(t testing.TB, e Event) events.Message {
	t.Helper()
	w := wireEvent{Type: e.Type, Action: e.Action, Scope: "local", Time: e.Time.Unix(), Nano: e.Time.UnixNano()}
	attrs := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			attrs[k] = v
		}
	}
	if e.Type == "network" {
		w.Actor.ID = e.NetworkID
		put("container", e.ContainerID)
		put("name", e.NetworkName)
		put("type", e.NetworkType)
	} else {
		w.Actor.ID = e.ContainerID
		put("name", e.Name)
		put("image", e.Image)
		if sh.legacy {
			w.Status, w.ID, w.From = e.Action, e.ContainerID, e.Image
		}
	}
	w.Actor.Attributes = attrs
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var m events.Message
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

func newFake() *fakeEngine {
	return &fakeEngine{containers: map[string]Container{}, networks: map[string]Network{}, streams: make(chan stream, 10)}
}

func (f *fakeEngine) Events(ctx context.Context, since time.Time) (<-chan Event, <-chan error) {
	f.mu.Lock()
	f.sinces = append(f.sinces, since)
	f.mu.Unlock()
	s := stream{events: make(chan events.Message), errs: make(chan error, 1)}
	f.streams <- s
	return relay(ctx, s.events, s.errs)
}

func (f *fakeEngine) Container(ctx context.Context, id string) (Container, error) {
	f.mu.Lock()
	wait, latency := f.slow[id], f.latency
	f.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return Container{}, ctx.Err()
		}
	}
	if latency > 0 {
		time.Sleep(latency)
	}
	f.mu.Lock()
	if f.inspects == nil {
		f.inspects = map[string]int{}
	}
	f.inspects[id]++
	if f.unreachable > 0 {
		f.unreachable--
		f.mu.Unlock()
		return Container{}, errors.New("Cannot connect to the Docker daemon")
	}
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return Container{}, fmt.Errorf("%w: No such container: %s", ErrNoSuchContainer, id)
	}
	return c, nil
}

func (f *fakeEngine) Died(_ context.Context, id string, since time.Time) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if at, ok := f.died[id]; ok && !at.Before(since) {
		return at, nil
	}
	return time.Time{}, nil
}

func (f *fakeEngine) Network(_ context.Context, id string) (Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.networkInspects++
	return f.networks[id], nil
}

func (f *fakeEngine) Running(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.down {
		return nil, errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")
	}
	var ids []string
	for id, c := range f.containers {
		if c.Running {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (f *fakeEngine) Stop(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopErr != nil {
		return f.stopErr
	}
	f.stopped = append(f.stopped, id)
	return nil
}

// listed waits until the watcher listed the running containers n times:
// containers set after that are new to its reconciliation.
func (f *fakeEngine) listed(t testing.TB, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		f.mu.Lock()
		done := f.lists >= n
		f.mu.Unlock()
		if done {
			return
		}
	}
	t.Fatalf("the watcher did not list the running containers %d times", n)
}

func (f *fakeEngine) set(c Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers[c.ID] = c
}

const hpNet = "hpnet0123456789"

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func newContainer(id, name, image string, running bool, mode string) Container {
	c := Container{Running: running, NetworkMode: mode, StartedAt: t0, Endpoints: map[string]string{}}
	c.ID, c.Name, c.Image, c.Labels = id, name, image, map[string]string{"team": "web"}
	if mode == "hp" {
		c.Endpoints[hpNet] = "ep-" + id
	}
	return c
}

type harness struct {
	t      testing.TB
	w      *Watcher
	fake   *fakeEngine
	log    *audit.Log
	path   string // the audit log
	dir    string // the state dir
	policy string
	stop   bool
	// internal and adopted: what the driver says of hpNet.
	internal, adopted bool
	// shape: how the fake engine sends events (see eachShape); the
	// newest engines' by default.
	shape shape
	// engine: what the watcher talks to, when not fake (NewDockerEngine
	// over a fakeDocker).
	engine Engine
	// obs hears the watcher, across restarts.
	obs *fakeObserver
	// gaps: records lists watch.gap records too. The tests that break the
	// stream to wait for the watcher (settle) leave them out: the record
	// of that window is written after the next subscription, and its
	// tests are in gap_test.go.
	gaps bool
}

func newHarness(t testing.TB, policy string, stop bool) *harness {
	t.Helper()
	dir := t.TempDir()
	fake := newFake()
	fake.networks[hpNet] = Network{Name: "hp", Labels: map[string]string{"env": "prod"}}
	h := &harness{t: t, fake: fake, path: filepath.Join(dir, "audit.jsonl"), dir: dir, policy: policy, stop: stop, shape: shapes[len(shapes)-1], obs: &fakeObserver{}}
	h.restart()
	return h
}

// harness is newHarness whose fake Docker sends events in shape sh: the
// one constructor eachShape's tests use, so none runs one shape twice.
func (sh shape) harness(t testing.TB, policy string, stop bool) *harness {
	t.Helper()
	h := newHarness(t, policy, stop)
	h.shape = sh
	return h
}

// restart gives the harness a new audit log on its path and a new watcher
// on its state dir, as a daemon restart does.
func (h *harness) restart() {
	h.t.Helper()
	if h.log != nil {
		h.log.Close()
	}
	l := audit.Open(h.path, nil)
	h.t.Cleanup(func() { l.Close() })
	p, err := ParsePolicy(h.policy)
	if err != nil {
		h.t.Fatal(err)
	}
	discard := logrus.New()
	discard.SetOutput(io.Discard)
	var engine Engine = h.fake
	if h.engine != nil {
		engine = h.engine
	}
	w, err := New(Config{
		Engine: engine, Audit: l,
		Known:          func(id string) (string, bool, bool, bool) { return "web-tier", h.internal, h.adopted, id == hpNet },
		HostInterfaces: func() []audit.Interface { return []audit.Interface{{Name: "lo", Index: 1}} },
		Policy:         p, StopViolators: h.stop, StateDir: h.dir, Host: "node1", Driver: "hostpass",
		Log: logrus.NewEntry(discard), Observer: h.obs,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.w, h.log = w, l
}

// run starts the watcher's Run; stop ends it and waits.
func (h *harness) run() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.w.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// wire is e as the fake engine sends it, in the harness's shape.
func (h *harness) wire(e Event) events.Message {
	h.t.Helper()
	return h.shape.wire(h.t, e)
}

// handle applies e, as the engine sent it, as the stream's reader would, and
// fails the test if its records could not be made durable.
func (h *harness) handle(ctx context.Context, e Event) {
	h.t.Helper()
	if err := h.w.handle(ctx, eventOf(h.wire(e))); err != nil {
		h.t.Fatalf("handle %+v: %v", e, err)
	}
}

func (h *harness) records() []audit.Record {
	h.t.Helper()
	f, err := os.Open(h.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r audit.Record
		json.Unmarshal(sc.Bytes(), &r)
		if r.Event == audit.HostView || r.Event == audit.WatchGap && !h.gaps {
			continue // the log's record of the view a host.join names; the windows of reconnects (gap_test.go)
		}
		out = append(out, r)
	}
	return out
}

func names(recs []audit.Record) string {
	var s []string
	for _, r := range recs {
		e := string(r.Event)
		if r.ObservedLate {
			e += "(late)"
		}
		s = append(s, e)
	}
	return strings.Join(s, " ")
}

func hostEvent(action, id string, at time.Time) Event {
	return Event{Time: at, Type: "network", Action: action, NetworkID: "hostnetid", NetworkName: "host", NetworkType: "host", ContainerID: id}
}

func TestHostModeLifecycle(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		ctx := context.Background()
		c := newContainer("c1", "web", "nginx:1", false, "host")
		c.StartedAt = t0.Add(-time.Hour) // inspect at connect shows the previous run
		h.fake.set(c)
		h.handle(ctx, hostEvent("connect", "c1", t0))
		c.Running, c.StartedAt = true, t0.Add(time.Millisecond)
		h.fake.set(c)
		h.handle(ctx, Event{Time: t0.Add(time.Millisecond), Type: "container", Action: "start", ContainerID: "c1", Name: "web"})
		h.handle(ctx, hostEvent("connect", "c1", t0)) // a replayed duplicate
		h.handle(ctx, Event{Time: t0.Add(90 * time.Second), Type: "container", Action: "die", ContainerID: "c1", Name: "web", Image: "nginx:1"})
		h.handle(ctx, hostEvent("disconnect", "c1", t0.Add(90*time.Second))) // after die: a duplicate leave

		recs := h.records()
		if names(recs) != "host.join host.leave" {
			t.Fatalf("records: %s, want host.join host.leave", names(recs))
		}
		j, l := recs[0], recs[1]
		if j.Container.Name != "web" || j.Container.Image != "nginx:1" || j.Container.Labels["team"] != "web" || j.HostView == "" || !j.Container.StartedAt.Equal(t0) {
			t.Errorf("host.join %+v %+v: want name, image, labels, host interfaces, start = the connect time", j, j.Container)
		}
		if l.HostModeSeconds == nil || *l.HostModeSeconds < 89.9 || *l.HostModeSeconds > 90 || l.Container.Name != "web" {
			t.Errorf("host.leave %+v: want about 90 s in host mode, by web", l)
		}
	})
}

func TestOutOfOrderDisconnectBeforeConnect(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		ctx := context.Background()
		h.fake.set(newContainer("c2", "quick", "busybox", false, "host"))
		h.handle(ctx, hostEvent("disconnect", "c2", t0.Add(2*time.Second)))
		h.handle(ctx, hostEvent("connect", "c2", t0))
		recs := h.records()
		if names(recs) != "host.join host.leave" || *recs[1].HostModeSeconds != 2 {
			t.Fatalf("records: %s (%+v), want host.join then host.leave of 2 s", names(recs), recs)
		}
	})
}

func TestContainerGoneBeforeInspect(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		ctx := context.Background()
		h.handle(ctx, hostEvent("connect", "gone", t0))
		h.handle(ctx, Event{Time: t0.Add(time.Second), Type: "container", Action: "die", ContainerID: "gone", Name: "brief", Image: "busybox"})
		recs := h.records()
		if names(recs) != "host.join host.leave" || !strings.Contains(recs[0].Detail, "gone before it could be inspected") ||
			recs[1].Container.Name != "brief" || recs[1].Container.Image != "busybox" {
			t.Fatalf("records %+v: want the join noted as uninspectable, the leave named from the die event", recs)
		}
	})
}

// An inspect that fails while Docker restarts is retried: the container is
// not recorded as gone.
func TestInspectRetriedWhileDockerIsUnreachable(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
		h.fake.unreachable = 2
		h.handle(context.Background(), hostEvent("connect", "c1", t0))
		recs := h.records()
		if names(recs) != "host.join" || recs[0].Detail != "" || recs[0].Container.Name != "web" {
			t.Fatalf("records %+v, want the host.join of web, inspected", recs)
		}
	})
}

func TestAttributionAndDuplicates(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		ctx := context.Background()
		c := newContainer("c3", "api", "app:2", true, "hp")
		c.Privileged, c.CapAdd, c.Ports = true, []string{"NET_ADMIN"}, []string{"0.0.0.0:8080->80/tcp"}
		h.fake.set(c)
		connect := Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, NetworkName: "hp", NetworkType: "hostpass", ContainerID: "c3"}
		h.handle(ctx, connect)
		h.handle(ctx, connect) // replayed
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: "bridgenet", NetworkName: "bridge", NetworkType: "bridge", ContainerID: "c3"})
		recs := h.records()
		if names(recs) != "endpoint.attribute" {
			t.Fatalf("records: %s, want one endpoint.attribute", names(recs))
		}
		r := recs[0]
		if r.EndpointID != "ep-c3" || r.NetworkID != hpNet || r.Tag != "web-tier" || r.NetworkName != "hp" || r.NetworkLabels["env"] != "prod" ||
			r.Container.Name != "api" || !r.Container.Privileged || r.Container.CapAdd[0] != "NET_ADMIN" || r.Container.Ports[0] != "0.0.0.0:8080->80/tcp" {
			t.Errorf("endpoint.attribute %+v %+v: want endpoint, network name and labels, container facts", r, r.Container)
		}
	})
}

func TestReconcileRecordsWhatEventsMissed(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		ctx := context.Background()
		// Recorded before: a host-mode session whose container has since gone.
		h.fake.set(newContainer("old", "old", "busybox", true, "host"))
		h.handle(ctx, hostEvent("connect", "old", t0))
		h.fake.mu.Lock()
		delete(h.fake.containers, "old")
		h.fake.mu.Unlock()
		// Started while the watcher was away.
		h.fake.set(newContainer("new", "late-host", "busybox", true, "host"))
		h.fake.set(newContainer("hpc", "late-hp", "app", true, "hp"))
		if err := h.w.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.w.reconcile(ctx); err != nil { // twice: nothing more
			t.Fatal(err)
		}
		got := names(h.records())
		for _, want := range []string{"host.join(late)", "endpoint.attribute(late)", "host.leave(late)"} {
			if strings.Count(got, want) != 1 {
				t.Errorf("records %q: want exactly one %s", got, want)
			}
		}
	})
}

func TestPolicyViolation(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		for _, stop := range []bool{false, true} {
			h := sh.harness(t, "label:team=payments,image:registry.example/pay/*", stop)
			h.fake.set(newContainer("bad", "intruder", "busybox", true, "hp"))
			ok := newContainer("good", "payer", "registry.example/pay/api:1", true, "hp")
			h.fake.set(ok)
			for _, id := range []string{"bad", "good"} {
				h.handle(context.Background(), Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: id})
			}
			recs := h.records()
			if names(recs) != "endpoint.attribute policy.violation endpoint.attribute" {
				t.Fatalf("stop=%v: records %s", stop, names(recs))
			}
			v := recs[1]
			wantAction := map[bool]string{false: "recorded", true: "stopped"}[stop]
			if v.Container.Name != "intruder" || v.Action != wantAction || v.Policy != "label:team=payments,image:registry.example/pay/*" {
				t.Errorf("stop=%v: violation %+v, want intruder, action %s, the policy", stop, v, wantAction)
			}
			if stop != (len(h.fake.stopped) == 1 && h.fake.stopped[0] == "bad") {
				t.Errorf("stop=%v: stopped %v", stop, h.fake.stopped)
			}
		}
	})
}

func TestParsePolicy(t *testing.T) {
	for _, bad := range []string{"label:", "image:[", "team=web", "all,label:x"} {
		if _, err := ParsePolicy(bad); err == nil || !strings.Contains(err.Error(), "want all, or rules") && !strings.Contains(err.Error(), "bad image pattern") {
			t.Errorf("ParsePolicy(%q) = %v, want an error naming the accepted forms", bad, err)
		}
	}
}

func TestRunReconnectsAndReplaysFromTheLastEvent(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		ctx, cancel := context.WithCancel(context.Background())
		h.fake.set(newContainer("c5", "first", "busybox", false, "host")) // starting: not yet running
		done := make(chan struct{})
		go func() { h.w.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		s := <-h.fake.streams
		h.fake.listed(t, 1) // the stream is read while reconciling: let it list c5 as not running
		s.events <- h.wire(hostEvent("connect", "c5", t0))
		h.fake.set(newContainer("c5", "first", "busybox", true, "host"))
		s.errs <- errors.New("dockerd restarted") // the stream breaks
		// While disconnected, a host-mode container starts.
		h.fake.set(newContainer("c6", "while-away", "busybox", true, "host"))
		s = <-h.fake.streams // the watcher is back
		deadline := time.Now().Add(5 * time.Second)
		for len(h.records()) < 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		h.fake.mu.Lock()
		sinces := append([]time.Time(nil), h.fake.sinces...)
		h.fake.mu.Unlock()
		if len(sinces) < 2 || !sinces[1].Equal(t0) {
			t.Errorf("subscriptions since %v, want the second from the last event seen (%v)", sinces, t0)
		}
		if got := names(h.records()); got != "host.join host.join(late)" {
			t.Errorf("records %q, want the streamed join and the reconciled one", got)
		}
	})
}

func TestDieOfOtherContainersHoldsNothing(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		for i := 0; i < 100; i++ {
			h.handle(context.Background(), Event{Time: t0, Type: "container", Action: "die", ContainerID: fmt.Sprint("c", i)})
		}
		if n := len(h.w.state.early); n != 0 {
			t.Errorf("%d early disconnects held after the deaths of containers never in host mode, want 0", n)
		}
		h.handle(context.Background(), hostEvent("disconnect", "x", t0))
		h.handle(context.Background(), hostEvent("disconnect", "y", t0.Add(earlyHold+time.Second)))
		if _, ok := h.w.state.early["x"]; ok || len(h.w.state.early) != 1 {
			t.Errorf("early = %v, want x forgotten after %s", h.w.state.early, earlyHold)
		}
		if recs := h.records(); len(recs) != 0 {
			t.Errorf("records %s, want none", names(recs))
		}
	})
}

// The disconnect that follows a die holds nothing: a busy host would
// otherwise hold one per container for earlyHold.
func TestDisconnectAfterDieHoldsNothing(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "all", false)
		for i := 0; i < 100; i++ {
			id := fmt.Sprint("c", i)
			h.fake.set(newContainer(id, id, "busybox", false, "host"))
			h.handle(context.Background(), hostEvent("connect", id, t0))
			h.handle(context.Background(), Event{Time: t0.Add(time.Second), Type: "container", Action: "die", ContainerID: id})
			h.handle(context.Background(), hostEvent("disconnect", id, t0.Add(time.Second)))
		}
		if len(h.w.state.early) != 0 || len(h.w.state.closed) != 0 {
			t.Errorf("%d disconnects and %d dies held, want none", len(h.w.state.early), len(h.w.state.closed))
		}
		if n := len(h.records()); n != 200 {
			t.Errorf("%d records, want 200", n)
		}
	})
}

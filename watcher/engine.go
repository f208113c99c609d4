package watcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/hostpass/hostpass/audit"
)

// Engine is the part of the Docker Engine API the watcher uses, in the
// watcher's own terms, so that tests can stand in for Docker.
type Engine interface {
	// Events streams network and container events from since (replayed by
	// Docker from its recent history) on. The error channel says when the
	// stream ends. It is called with no other call in flight (the watcher's
	// lanes are drained between subscriptions): Docker may have been
	// upgraded or downgraded since the last one, and Events settles the API
	// version every later call speaks.
	Events(ctx context.Context, since time.Time) (<-chan Event, <-chan error)
	// Container inspects a container; an error wrapping ErrNoSuchContainer
	// says Docker does not know it (removed), one wrapping ErrUnreadable
	// that Docker's answer cannot be read (asking again will not help).
	Container(ctx context.Context, id string) (Container, error)
	Network(ctx context.Context, id string) (Network, error)
	// Died returns the time of the first die event of container id at or
	// after since that Docker still remembers, or the zero time.
	Died(ctx context.Context, id string, since time.Time) (time.Time, error)
	// Remembers reports whether Docker's event history still holds an
	// event that Events streams, timed at exactly at: the last event the
	// watcher handled, which tells whether a replay from at held every
	// event since (gap.go).
	Remembers(ctx context.Context, at time.Time) (bool, error)
	// Running lists the IDs of the running containers.
	Running(ctx context.Context) ([]string, error)
	Stop(ctx context.Context, id string) error
}

// ErrNoSuchContainer: Docker does not know the container. Any other inspect
// error than these two (Docker down, a timeout) is retried.
var ErrNoSuchContainer = errors.New("no such container")

// ErrUnreadable: Docker answered an inspect with JSON the watcher cannot
// read (a field it reads in a shape no engine documents).
var ErrUnreadable = errors.New("cannot read Docker's inspect")

// Event is one Docker event the watcher cares about.
type Event struct {
	Time   time.Time
	Type   string // "network" or "container"
	Action string // connect, disconnect (network); start, die (container)
	// Network events: the network's ID, name and driver type, and the
	// container's ID. Container events: the container's ID, name, image.
	NetworkID, NetworkName, NetworkType string
	ContainerID, Name, Image            string
}

// Container is an inspected container: what the audit records say of it,
// and what the watcher needs to place it.
type Container struct {
	audit.Container
	Running     bool
	StartedAt   time.Time // of the current or last run
	FinishedAt  time.Time
	NetworkMode string            // "host" for --network host
	Endpoints   map[string]string // network ID → endpoint ID
}

// Network is what an audit record says about a network.
type Network struct {
	Name   string
	Labels map[string]string
}

// dockerEngine is Engine over the official client.
type dockerEngine struct {
	path string
	// api is the client of the current subscription. Events replaces it
	// while no call is in flight; calls load it once each.
	api atomic.Pointer[apiClient]
}

// apiClient is a client at the API version it negotiated, and an HTTP
// client on the same socket for inspect replies the API types refuse.
type apiClient struct {
	c   *client.Client
	raw *http.Client
}

// NewDockerEngine talks to the Docker socket at path. Each subscription
// negotiates the API version anew (never pin one): the engine's own, from
// 1.40 up to the client's newest. Debian's dockerd 20.10 speaks 1.41, Docker
// 29 1.52 and later, which send events without the legacy status, id and
// from fields (see eventOf); Docker 29.0 to 29.2 refuse versions below 1.44.
func NewDockerEngine(path string) (Engine, error) {
	d := &dockerEngine{path: path}
	a, err := d.newClient()
	if err != nil {
		return nil, err
	}
	d.api.Store(a)
	return d, nil
}

func (d *dockerEngine) newClient() (*apiClient, error) {
	c, err := client.New(client.WithHost("unix://" + d.path))
	if err != nil {
		return nil, err
	}
	dial := c.Dialer()
	raw := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
	}}
	return &apiClient{c: c, raw: raw}, nil
}

func (a *apiClient) close() {
	a.c.Close()
	a.raw.CloseIdleConnections()
}

// Events first negotiates the API version with a new client: dockerd may
// have been upgraded (20.10 to 29) or downgraded while hostpass ran, and
// then refuses the version the old client settled on. A new client, not
// Ping's ForceNegotiate: client v0.6.2 negotiates down from the version it
// has, never up, so it would keep 1.41, which Docker 29.0 to 29.2 refuse.
// Nothing else is in flight (see Engine): no call straddles the two clients.
func (d *dockerEngine) Events(ctx context.Context, since time.Time) (<-chan Event, <-chan error) {
	a, err := d.newClient()
	if err == nil {
		if _, err = a.c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			// Retried on every backoff while Docker is down or answers
			// errors: close what each try opened.
			a.close()
		}
	}
	if err != nil {
		errs := make(chan error, 1)
		errs <- err
		return nil, errs
	}
	if old := d.api.Swap(a); old != nil {
		old.close()
	}
	opts := client.EventsListOptions{Filters: followed()}
	if !since.IsZero() {
		opts.Since = dockerTime(since)
	}
	r := a.c.Events(ctx, opts)
	return relay(ctx, r.Messages, r.Err)
}

// followed selects the events the watcher follows.
func followed() client.Filters {
	return make(client.Filters).
		Add("type", string(events.NetworkEventType), string(events.ContainerEventType)).
		Add("event", "connect", "disconnect", "start", "die")
}

// relay hands Docker's messages on as Events, in order, until the stream
// breaks (the error is passed on) or ctx ends.
func relay(ctx context.Context, msgs <-chan events.Message, errs <-chan error) (<-chan Event, <-chan error) {
	out := make(chan Event)
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case m := <-msgs:
				select {
				case out <- eventOf(m):
				case <-ctx.Done():
					return
				}
			case err := <-errs:
				outErr <- err
				return
			case <-ctx.Done():
				outErr <- ctx.Err()
				return
			}
		}
	}()
	return out, outErr
}

// eventOf reads a Docker event from its Type, Action and Actor, which every
// engine since API 1.22 sends. The legacy status, id and from fields came
// with container events only, and API 1.52 (Docker 29) dropped them.
func eventOf(m events.Message) Event {
	e := Event{Time: time.Unix(0, m.TimeNano).UTC(), Type: string(m.Type), Action: string(m.Action)}
	a := m.Actor.Attributes
	if m.Type == events.NetworkEventType {
		e.NetworkID, e.NetworkName, e.NetworkType, e.ContainerID = m.Actor.ID, a["name"], a["type"], a["container"]
	} else {
		e.ContainerID, e.Name, e.Image = m.Actor.ID, a["name"], a["image"]
	}
	return e
}

// dockerTime is t as the events API takes it.
func dockerTime(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// Died asks Docker's event history, up to now (so that the stream ends).
func (d *dockerEngine) Died(ctx context.Context, id string, since time.Time) (time.Time, error) {
	f := make(client.Filters).Add("type", string(events.ContainerEventType)).Add("container", id).Add("event", "die")
	r := d.api.Load().c.Events(ctx, client.EventsListOptions{Filters: f, Since: dockerTime(since), Until: dockerTime(time.Now())})
	select {
	case m := <-r.Messages:
		return time.Unix(0, m.TimeNano).UTC(), nil
	case err := <-r.Err:
		if errors.Is(err, io.EOF) {
			return time.Time{}, nil
		}
		return time.Time{}, err
	}
}

// Remembers asks Docker's history for the followed events from at to at:
// with until in the past, Docker sends what its history holds and ends the
// stream.
func (d *dockerEngine) Remembers(ctx context.Context, at time.Time) (bool, error) {
	r := d.api.Load().c.Events(ctx, client.EventsListOptions{Filters: followed(), Since: dockerTime(at), Until: dockerTime(at)})
	for {
		select {
		case m := <-r.Messages:
			if m.TimeNano == at.UnixNano() {
				return true, nil
			}
		case err := <-r.Err:
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, err
		}
	}
}

func (d *dockerEngine) Container(ctx context.Context, id string) (Container, error) {
	a := d.api.Load()
	r, err := a.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	raw := []byte(r.Raw)
	if err != nil && !cerrdefs.IsNotFound(err) && !client.IsErrConnectionFailed(err) && ctx.Err() == nil {
		// Most likely a reply the API types refuse (see inspectReply); read
		// it raw, which also tells such a reply from a failed request.
		raw, err = a.rawInspect(ctx, id)
	}
	if cerrdefs.IsNotFound(err) {
		return Container{}, fmt.Errorf("%w: %w", ErrNoSuchContainer, err)
	}
	if err != nil {
		return Container{}, err
	}
	var j inspectReply
	if err := json.Unmarshal(raw, &j); err != nil {
		return Container{}, fmt.Errorf("%w of container %s: %w", ErrUnreadable, id, err)
	}
	return j.container(), nil
}

// rawInspect asks for a container's inspect on a's socket, at a's API
// version, and returns the reply's body as it is.
func (a *apiClient) rawInspect(ctx context.Context, id string) ([]byte, error) {
	u := url.URL{Scheme: "http", Host: "docker", Path: "/v" + a.c.ClientVersion() + "/containers/" + id + "/json"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.raw.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return body, nil
	}
	var e struct{ Message string }
	if json.Unmarshal(body, &e) != nil || e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	err = fmt.Errorf("inspect of container %s: Docker answered %d: %s", id, resp.StatusCode, e.Message)
	if resp.StatusCode == http.StatusNotFound {
		return nil, cerrdefs.ErrNotFound.WithMessage(err.Error())
	}
	return nil, err
}

// inspectReply is the part of a container inspect the watcher reads. A
// published port's host address stays text: the API types parse it (and
// Dns, which the watcher does not read) as an IP address, and fail the whole
// reply, but dockerd 20.10 takes any text there from a container created
// through the raw API ("HostIp": "localhost").
type inspectReply struct {
	ID     string `json:"Id"`
	Name   string
	Image  string
	Config *struct {
		Image  string
		Labels map[string]string
	}
	State *struct {
		Running               bool
		StartedAt, FinishedAt string
	}
	HostConfig *struct {
		NetworkMode  string
		Privileged   bool
		CapAdd       []string
		PortBindings map[string][]struct {
			HostIP   string `json:"HostIp"`
			HostPort string
		}
	}
	NetworkSettings *struct {
		Networks map[string]*struct{ NetworkID, EndpointID string }
	}
}

func (j inspectReply) container() Container {
	c := Container{Endpoints: map[string]string{}}
	c.ID, c.Name, c.ImageID = j.ID, strings.TrimPrefix(j.Name, "/"), j.Image
	if j.Config != nil {
		c.Image, c.Labels = j.Config.Image, j.Config.Labels
	}
	if j.State != nil {
		c.Running = j.State.Running
		c.StartedAt, _ = time.Parse(time.RFC3339Nano, j.State.StartedAt)
		c.FinishedAt, _ = time.Parse(time.RFC3339Nano, j.State.FinishedAt)
	}
	if j.HostConfig != nil {
		c.Privileged, c.CapAdd, c.NetworkMode = j.HostConfig.Privileged, j.HostConfig.CapAdd, j.HostConfig.NetworkMode
		// Docker's text: "" (Docker 20.10's "HostIp" for every address)
		// prints as ":18080->80/tcp".
		for port, bindings := range j.HostConfig.PortBindings {
			for _, b := range bindings {
				c.Ports = append(c.Ports, fmt.Sprintf("%s:%s->%s", b.HostIP, b.HostPort, port))
			}
		}
		sort.Strings(c.Ports)
	}
	if j.NetworkSettings != nil {
		for _, ep := range j.NetworkSettings.Networks {
			if ep != nil {
				c.Endpoints[ep.NetworkID] = ep.EndpointID
			}
		}
	}
	return c
}

func (d *dockerEngine) Network(ctx context.Context, id string) (Network, error) {
	r, err := d.api.Load().c.NetworkInspect(ctx, id, client.NetworkInspectOptions{})
	if err != nil {
		return Network{}, err
	}
	return Network{Name: r.Network.Name, Labels: r.Network.Labels}, nil
}

func (d *dockerEngine) Running(ctx context.Context) ([]string, error) {
	r, err := d.api.Load().c.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(r.Items))
	for i, c := range r.Items {
		ids[i] = c.ID
	}
	return ids, nil
}

func (d *dockerEngine) Stop(ctx context.Context, id string) error {
	timeout := 5
	_, err := d.api.Load().c.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout})
	return err
}

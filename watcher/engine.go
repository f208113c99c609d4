package watcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
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
	// stream ends.
	Events(ctx context.Context, since time.Time) (<-chan Event, <-chan error)
	// Container inspects a container; an error wrapping ErrNoSuchContainer
	// says Docker does not know it (removed).
	Container(ctx context.Context, id string) (Container, error)
	Network(ctx context.Context, id string) (Network, error)
	// Died returns the time of the first die event of container id at or
	// after since that Docker still remembers, or the zero time.
	Died(ctx context.Context, id string, since time.Time) (time.Time, error)
	// Running lists the IDs of the running containers.
	Running(ctx context.Context) ([]string, error)
	Stop(ctx context.Context, id string) error
}

// ErrNoSuchContainer: Docker does not know the container. Any other inspect
// error (Docker down, a timeout) is retried.
var ErrNoSuchContainer = errors.New("no such container")

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
type dockerEngine struct{ c *client.Client }

// NewDockerEngine talks to the Docker socket at path. The client negotiates
// the API version on its first request (its default; never pin one): the
// engine's own, from 1.40 up to the client's newest. Debian's dockerd 20.10
// speaks 1.41, Docker 29 1.52 and later, which send events without the legacy
// status, id and from fields (see eventOf).
func NewDockerEngine(path string) (Engine, error) {
	c, err := client.New(client.WithHost("unix://" + path))
	if err != nil {
		return nil, err
	}
	return dockerEngine{c}, nil
}

func (d dockerEngine) Events(ctx context.Context, since time.Time) (<-chan Event, <-chan error) {
	f := make(client.Filters).
		Add("type", string(events.NetworkEventType), string(events.ContainerEventType)).
		Add("event", "connect", "disconnect", "start", "die")
	opts := client.EventsListOptions{Filters: f}
	if !since.IsZero() {
		opts.Since = dockerTime(since)
	}
	r := d.c.Events(ctx, opts)
	return relay(ctx, r.Messages, r.Err)
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
func (d dockerEngine) Died(ctx context.Context, id string, since time.Time) (time.Time, error) {
	f := make(client.Filters).Add("type", string(events.ContainerEventType)).Add("container", id).Add("event", "die")
	r := d.c.Events(ctx, client.EventsListOptions{Filters: f, Since: dockerTime(since), Until: dockerTime(time.Now())})
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

func (d dockerEngine) Container(ctx context.Context, id string) (Container, error) {
	r, err := d.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return Container{}, fmt.Errorf("%w: %w", ErrNoSuchContainer, err)
	}
	if err != nil {
		return Container{}, err
	}
	j := r.Container
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
		c.Privileged, c.CapAdd, c.NetworkMode = j.HostConfig.Privileged, j.HostConfig.CapAdd, string(j.HostConfig.NetworkMode)
		for port, bindings := range j.HostConfig.PortBindings {
			for _, b := range bindings {
				c.Ports = append(c.Ports, fmt.Sprintf("%s:%s->%s", hostIP(b.HostIP), b.HostPort, port))
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
	return c, nil
}

// hostIP is a published port's host address as Docker wrote it: "" when
// the port is published on every address (Docker 20.10 sends "HostIp": "").
func hostIP(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (d dockerEngine) Network(ctx context.Context, id string) (Network, error) {
	r, err := d.c.NetworkInspect(ctx, id, client.NetworkInspectOptions{})
	if err != nil {
		return Network{}, err
	}
	return Network{Name: r.Network.Name, Labels: r.Network.Labels}, nil
}

func (d dockerEngine) Running(ctx context.Context) ([]string, error) {
	r, err := d.c.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(r.Items))
	for i, c := range r.Items {
		ids[i] = c.ID
	}
	return ids, nil
}

func (d dockerEngine) Stop(ctx context.Context, id string) error {
	timeout := 5
	_, err := d.c.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout})
	return err
}

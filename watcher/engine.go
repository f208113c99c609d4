package watcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

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

// NewDockerEngine talks to the Docker socket at path, negotiating the API
// version (Engine API 1.41 and later).
func NewDockerEngine(path string) (Engine, error) {
	c, err := client.NewClientWithOpts(client.WithHost("unix://"+path), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	return dockerEngine{c}, nil
}

func (d dockerEngine) Events(ctx context.Context, since time.Time) (<-chan Event, <-chan error) {
	f := filters.NewArgs(
		filters.Arg("type", "network"), filters.Arg("type", "container"),
		filters.Arg("event", "connect"), filters.Arg("event", "disconnect"),
		filters.Arg("event", "start"), filters.Arg("event", "die"))
	opts := events.ListOptions{Filters: f}
	if !since.IsZero() {
		opts.Since = dockerTime(since)
	}
	msgs, errs := d.c.Events(ctx, opts)
	out := make(chan Event)
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case m := <-msgs:
				e := Event{Time: time.Unix(0, m.TimeNano).UTC(), Type: string(m.Type), Action: string(m.Action)}
				a := m.Actor.Attributes
				if m.Type == events.NetworkEventType {
					e.NetworkID, e.NetworkName, e.NetworkType, e.ContainerID = m.Actor.ID, a["name"], a["type"], a["container"]
				} else {
					e.ContainerID, e.Name, e.Image = m.Actor.ID, a["name"], a["image"]
				}
				select {
				case out <- e:
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

// dockerTime is t as the events API takes it.
func dockerTime(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// Died asks Docker's event history, up to now (so that the stream ends).
func (d dockerEngine) Died(ctx context.Context, id string, since time.Time) (time.Time, error) {
	f := filters.NewArgs(filters.Arg("type", "container"), filters.Arg("container", id), filters.Arg("event", "die"))
	msgs, errs := d.c.Events(ctx, events.ListOptions{Filters: f, Since: dockerTime(since), Until: dockerTime(time.Now())})
	select {
	case m := <-msgs:
		return time.Unix(0, m.TimeNano).UTC(), nil
	case err := <-errs:
		if errors.Is(err, io.EOF) {
			return time.Time{}, nil
		}
		return time.Time{}, err
	}
}

func (d dockerEngine) Container(ctx context.Context, id string) (Container, error) {
	j, err := d.c.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return Container{}, fmt.Errorf("%w: %w", ErrNoSuchContainer, err)
	}
	if err != nil {
		return Container{}, err
	}
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
	return c, nil
}

func (d dockerEngine) Network(ctx context.Context, id string) (Network, error) {
	n, err := d.c.NetworkInspect(ctx, id, network.InspectOptions{})
	if err != nil {
		return Network{}, err
	}
	return Network{Name: n.Name, Labels: n.Labels}, nil
}

func (d dockerEngine) Running(ctx context.Context) ([]string, error) {
	list, err := d.c.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	return ids, nil
}

func (d dockerEngine) Stop(ctx context.Context, id string) error {
	timeout := 5
	return d.c.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout})
}

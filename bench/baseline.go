package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/network"
)

// noop is the baseline driver: go-plugins-helpers' handler over methods that
// do nothing, the fastest a remote network driver can answer.
type noop struct{}

func (noop) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: network.LocalScope}, nil
}
func (noop) CreateNetwork(*network.CreateNetworkRequest) error { return nil }
func (noop) AllocateNetwork(*network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return &network.AllocateNetworkResponse{}, nil
}
func (noop) DeleteNetwork(*network.DeleteNetworkRequest) error { return nil }
func (noop) FreeNetwork(*network.FreeNetworkRequest) error     { return nil }
func (noop) CreateEndpoint(*network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	return &network.CreateEndpointResponse{}, nil
}
func (noop) DeleteEndpoint(*network.DeleteEndpointRequest) error { return nil }
func (noop) EndpointInfo(*network.InfoRequest) (*network.InfoResponse, error) {
	return &network.InfoResponse{}, nil
}
func (noop) Join(*network.JoinRequest) (*network.JoinResponse, error) {
	return &network.JoinResponse{}, nil
}
func (noop) Leave(*network.LeaveRequest) error                   { return nil }
func (noop) DiscoverNew(*network.DiscoveryNotification) error    { return nil }
func (noop) DiscoverDelete(*network.DiscoveryNotification) error { return nil }
func (noop) ProgramExternalConnectivity(*network.ProgramExternalConnectivityRequest) error {
	return nil
}
func (noop) RevokeExternalConnectivity(*network.RevokeExternalConnectivityRequest) error { return nil }

// durable is the floor driver: the no-op driver, except that each
// CreateEndpoint and each Join appends one record-sized line to a file and
// fsyncs it before answering. It is what a driver that does nothing but
// make its calls durable costs, so it is the floor an audited driver can
// reach: the request path and the fsyncs, and nothing else.
type durable struct {
	noop
	mu   sync.Mutex // orders the appends and fsyncs, as one log's writer would
	f    *os.File
	line []byte
}

func (d *durable) CreateEndpoint(*network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	if err := d.append(); err != nil {
		return nil, err
	}
	return &network.CreateEndpointResponse{}, nil
}

func (d *durable) Join(*network.JoinRequest) (*network.JoinResponse, error) {
	if err := d.append(); err != nil {
		return nil, err
	}
	return &network.JoinResponse{}, nil
}

func (d *durable) append() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.Write(d.line); err != nil {
		return fmt.Errorf("floor driver: %w", err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("floor driver: %w", err)
	}
	return nil
}

// recordLine is about one audit record: 512 bytes ending in a newline.
func recordLine() []byte {
	line := bytes.Repeat([]byte{'x'}, 512)
	line[len(line)-1] = '\n'
	return line
}

// ServeNoop serves the do-nothing driver on a unix socket at path, in this
// process, until stop is called. With fsyncDir set it serves the floor
// driver instead: the same, but each CreateEndpoint and Join appends a
// 512-byte line to a temp file in fsyncDir and fsyncs it before answering;
// stop removes the file.
func ServeNoop(path, fsyncDir string) (stop func(), err error) {
	var drv network.Driver = noop{}
	closeFile := func() {}
	if fsyncDir != "" {
		f, err := os.CreateTemp(fsyncDir, ".hostpass-floor-driver-*")
		if err != nil {
			return nil, fmt.Errorf("serving the floor driver: %w", err)
		}
		drv = &durable{f: f, line: recordLine()}
		closeFile = func() { f.Close(); os.Remove(f.Name()) }
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		closeFile()
		return nil, fmt.Errorf("serving the no-op driver: %w", err)
	}
	h := network.NewHandler(drv)
	go h.Serve(l) // returns when l is closed
	return func() { l.Close(); os.Remove(path); closeFile() }, nil
}

// Round is one interleaved set of runs: the no-op driver, the floor driver
// when one is served, then hostpass.
type Round struct {
	Noop, Floor, Hostpass Summary
}

// Ratio is hostpass's rate as a fraction of the no-op driver's.
func (r Round) Ratio() float64 { return ratio(r.Hostpass.Rate, r.Noop.Rate) }

// FloorRatio is hostpass's rate as a fraction of the floor driver's; 0 when
// no floor driver ran.
func (r Round) FloorRatio() float64 { return ratio(r.Hostpass.Rate, r.Floor.Rate) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Compare runs rounds interleaved sets of the same load, o: against the
// no-op driver on noopSocket, the floor driver on floorSocket unless it is
// empty, and the daemon on o.Socket, in that order. each is called after
// every round, so a long run shows progress. The error says a run could not
// start or had failed calls.
func Compare(ctx context.Context, o Options, noopSocket, floorSocket string, rounds int, each func(int, Round)) ([]Round, error) {
	var out []Round
	for i := range rounds {
		var r Round
		sides := []struct {
			socket string
			sum    *Summary
		}{{noopSocket, &r.Noop}, {floorSocket, &r.Floor}, {o.Socket, &r.Hostpass}}
		for _, side := range sides {
			if side.socket == "" {
				continue
			}
			so := o
			so.Socket = side.socket
			res, err := Run(ctx, so)
			if err != nil {
				return out, err
			}
			if res.Errors > 0 {
				return out, fmt.Errorf("%d of %d calls to %s failed; first: %w", res.Errors, res.Calls, side.socket, res.FirstErr)
			}
			*side.sum = res.Summary
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		out = append(out, r)
		if each != nil {
			each(i+1, r)
		}
	}
	return out, nil
}

// Overall sums the rounds: calls over time for each side.
func Overall(rounds []Round) Round {
	var o Round
	for _, side := range []func(*Round) *Summary{
		func(r *Round) *Summary { return &r.Noop },
		func(r *Round) *Summary { return &r.Floor },
		func(r *Round) *Summary { return &r.Hostpass },
	} {
		var calls, took float64
		sum := side(&o)
		for i := range rounds {
			s := side(&rounds[i])
			calls += s.Rate * s.DurationS
			took += s.DurationS
			sum.Calls += s.Calls
		}
		sum.Rate, sum.DurationS = ratio(calls, took), took
	}
	return o
}

// FsyncsPerContainer is what the audit log must make durable per container
// before dockerd hears ok: the create's record and the join's.
const FsyncsPerContainer = 2

// FsyncFloor measures one small append plus fsync on dir's filesystem, as
// `dd oflag=dsync` would: n appends of a record-sized line to a temp file in
// dir, each fsynced, and returns their mean.
func FsyncFloor(dir string, n int) (time.Duration, error) {
	if n < 1 {
		return 0, errors.New("fsync floor: n must be 1 or more")
	}
	f, err := os.CreateTemp(dir, ".hostpass-fsync-floor-*")
	if err != nil {
		return 0, fmt.Errorf("measuring the fsync floor in %s: %w", dir, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	line := recordLine()
	start := time.Now()
	for range n {
		if _, err := f.Write(line); err != nil {
			return 0, fmt.Errorf("measuring the fsync floor in %s: %w", dir, err)
		}
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("measuring the fsync floor in %s: %w", dir, err)
		}
	}
	return time.Since(start) / time.Duration(n), nil
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
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

// ServeNoop serves the do-nothing driver on a unix socket at path, in this
// process, until stop is called.
func ServeNoop(path string) (stop func(), err error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("serving the no-op driver: %w", err)
	}
	h := network.NewHandler(noop{})
	go h.Serve(l) // returns when l is closed
	return func() { l.Close(); os.Remove(path) }, nil
}

// Round is one interleaved pair of runs: the no-op driver, then hostpass.
type Round struct {
	Noop, Hostpass Summary
}

// Ratio is hostpass's rate as a fraction of the no-op driver's.
func (r Round) Ratio() float64 { return ratio(r.Hostpass.Rate, r.Noop.Rate) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Compare runs rounds interleaved pairs of the same load, o, against the
// no-op driver on noopSocket and against the daemon on o.Socket. each is
// called after every round, so a long run shows progress. The error says a
// run could not start or had failed calls.
func Compare(ctx context.Context, o Options, noopSocket string, rounds int, each func(int, Round)) ([]Round, error) {
	var out []Round
	for i := range rounds {
		var r Round
		for _, side := range []struct {
			socket string
			sum    *Summary
		}{{noopSocket, &r.Noop}, {o.Socket, &r.Hostpass}} {
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
	var nCalls, nTime, hCalls, hTime float64
	for _, r := range rounds {
		nCalls += r.Noop.Rate * r.Noop.DurationS
		nTime += r.Noop.DurationS
		hCalls += r.Hostpass.Rate * r.Hostpass.DurationS
		hTime += r.Hostpass.DurationS
		o.Noop.Calls += r.Noop.Calls
		o.Hostpass.Calls += r.Hostpass.Calls
	}
	o.Noop.Rate, o.Hostpass.Rate = ratio(nCalls, nTime), ratio(hCalls, hTime)
	o.Noop.DurationS, o.Hostpass.DurationS = nTime, hTime
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
	line := make([]byte, 512) // about one audit record
	for i := range line {
		line[i] = 'x'
	}
	line[len(line)-1] = '\n'
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

package driver

import (
	"github.com/docker/go-plugins-helpers/network"

	"github.com/hostpass/hostpass/audit"
)

// Join gives the container no interface, gateway or route, as the host
// driver does. It cannot put the container into the host's network
// namespace: Docker does that only for --network host. Without
// DisableGatewayService, Docker attaches the container to its gateway bridge
// (docker_gwbridge) for egress; --internal networks get lo only.
func (d *Driver) Join(req *network.JoinRequest) (*network.JoinResponse, error) {
	n := d.network(req.NetworkID)
	rec := d.record(audit.EndpointJoin, n)
	rec.EndpointID, rec.SandboxKey, rec.Options = req.EndpointID, req.SandboxKey, req.Options
	rec.HostInterfaces = d.cfg.HostInterfaces()
	if req.EndpointID == "" {
		return nil, d.refuse(rec, invalid("Join request has no EndpointID"))
	}
	if err := d.commit(rec); err != nil {
		return nil, err
	}
	return &network.JoinResponse{DisableGatewayService: n.Internal}, nil
}

// Leave undoes nothing, since Join set nothing up. Never refused.
func (d *Driver) Leave(req *network.LeaveRequest) error {
	n := d.known(req.NetworkID)
	rec := d.record(audit.EndpointLeave, n)
	rec.EndpointID = req.EndpointID
	d.keep(rec)
	return nil
}

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
	n, err := d.setup("Join", req.NetworkID, req.EndpointID)
	rec := d.record(audit.EndpointJoin, n)
	rec.NetworkID, rec.EndpointID, rec.SandboxKey, rec.Options = req.NetworkID, req.EndpointID, req.SandboxKey, req.Options
	rec.View = d.cfg.HostInterfaces() // the log records it as host.view, named in host_view
	if err != nil {
		return nil, d.refuse(rec, err)
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

package driver

import (
	"net/netip"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/hostpass/hostpass/audit"
)

// CreateEndpoint hands out nothing. Docker may offer an address from its
// IPAM; the reply must not echo an Interface back, or Docker rolls the
// endpoint back.
func (d *Driver) CreateEndpoint(req *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	n, err := d.setup("CreateEndpoint", req.NetworkID, req.EndpointID)
	rec := d.record(audit.EndpointCreate, n)
	rec.NetworkID, rec.EndpointID, rec.Options = req.NetworkID, req.EndpointID, req.Options
	var addr string
	if req.Interface != nil {
		addr = req.Interface.Address
		rec.AddressIPv6 = req.Interface.AddressIPv6
	}
	rec.Address = addr
	if err != nil {
		return nil, d.refuse(rec, err)
	}
	if err := d.commit(rec); err != nil {
		return nil, err
	}
	d.mu.Lock()
	if keepAddress(req.EndpointID, addr) {
		d.unusedAddress[req.EndpointID] = addr
	} else {
		delete(d.unusedAddress, req.EndpointID) // a repeated create replaces the first
	}
	d.mu.Unlock()
	return &network.CreateEndpointResponse{}, nil
}

// keepAddress reports whether EndpointInfo is to show addr: an address
// prefix, as Docker's IPAM offers, for an endpoint ID of Docker's form, 64
// lowercase hex digits. The body of a request may be a megabyte: hostpass
// keeps no more than a few dozen bytes of text an endpoint. The record
// keeps what was sent.
func keepAddress(endpointID, addr string) bool {
	_, err := netip.ParsePrefix(addr)
	return err == nil && len(endpointID) == 64 && onlyBytes(endpointID, "0123456789abcdef")
}

// DeleteEndpoint forgets the endpoint. Never refused; repeatable.
func (d *Driver) DeleteEndpoint(req *network.DeleteEndpointRequest) error {
	n := d.known(req.NetworkID)
	d.mu.Lock()
	delete(d.unusedAddress, req.EndpointID)
	d.mu.Unlock()
	rec := d.record(audit.EndpointDelete, n)
	rec.EndpointID = req.EndpointID
	d.keep(rec)
	return nil
}

// EndpointInfo reports what hostpass knows of the endpoint; Docker shows it
// in `docker inspect`.
func (d *Driver) EndpointInfo(req *network.InfoRequest) (*network.InfoResponse, error) {
	d.mu.Lock()
	n, known := d.networks[req.NetworkID]
	addr := d.unusedAddress[req.EndpointID]
	d.mu.Unlock()
	value := map[string]string{"hostpass.driver": d.cfg.Name}
	if known {
		value["hostpass.tag"] = n.Tag
	}
	if addr != "" {
		value["hostpass.unused_address"] = addr
	}
	return &network.InfoResponse{Value: value}, nil
}

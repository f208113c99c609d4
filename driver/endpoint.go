package driver

import (
	"encoding/hex"
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
	if key, ok := endpointKey(req.EndpointID); ok {
		_, err := netip.ParsePrefix(addr)
		d.mu.Lock()
		if err == nil {
			d.unusedAddress[key] = addr
		} else {
			delete(d.unusedAddress, key) // a repeated create replaces the first
		}
		d.mu.Unlock()
	}
	return &network.CreateEndpointResponse{}, nil
}

// endpointKey is an endpoint ID of Docker's form, 64 lowercase hex digits,
// as the 32 bytes they spell: the key of unusedAddress, in half the memory
// of the ID's text. ok is false for an ID of another form, which is served
// and recorded but keeps no address.
func endpointKey(id string) (key [32]byte, ok bool) {
	if len(id) != 64 || !onlyBytes(id, "0123456789abcdef") {
		return key, false
	}
	_, err := hex.Decode(key[:], []byte(id))
	return key, err == nil
}

// DeleteEndpoint forgets the endpoint. Never refused; repeatable.
func (d *Driver) DeleteEndpoint(req *network.DeleteEndpointRequest) error {
	n := d.known(req.NetworkID)
	if key, ok := endpointKey(req.EndpointID); ok {
		d.mu.Lock()
		delete(d.unusedAddress, key)
		d.mu.Unlock()
	}
	rec := d.record(audit.EndpointDelete, n)
	rec.EndpointID = req.EndpointID
	d.keep(rec)
	return nil
}

// EndpointInfo reports what hostpass knows of the endpoint; Docker shows it
// in `docker inspect`.
func (d *Driver) EndpointInfo(req *network.InfoRequest) (*network.InfoResponse, error) {
	key, docker := endpointKey(req.EndpointID)
	d.mu.Lock()
	n, known := d.networks[req.NetworkID]
	var addr string
	if docker {
		addr = d.unusedAddress[key]
	}
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

package driver

import (
	"sort"
	"strings"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/hostpass/hostpass/audit"
)

// Keys Docker puts in CreateNetwork's Options.
const (
	genericOptions = "com.docker.network.generic"  // the -o k=v pairs
	internalOption = "com.docker.network.internal" // --internal
)

// tagOption (-o tag=<text>) is carried into every audit record of the
// network. It is the only -o option hostpass accepts.
const tagOption = "tag"

var acceptedOptions = []string{tagOption}

// nullPool is the pool Docker sends with --ipam-driver null.
const nullPool = "0.0.0.0/0"

// Network is what hostpass remembers of a network, on disk and in memory.
type Network struct {
	ID        string         `json:"id"`
	Tag       string         `json:"tag,omitempty"`
	Internal  bool           `json:"internal"`
	Options   map[string]any `json:"options,omitempty"`
	IPAMPools []string       `json:"ipam_pools,omitempty"`
	// Adopted: hostpass never saw this network's CreateNetwork (its state
	// was lost, or the network predates it), so its tag is unknown.
	Adopted bool `json:"adopted"`
}

// CreateNetwork accepts the network if its -o options are known.
func (d *Driver) CreateNetwork(req *network.CreateNetworkRequest) error {
	n := Network{ID: req.NetworkID, Options: req.Options, Internal: isTrue(req.Options[internalOption])}
	for _, p := range req.IPv4Data {
		if p != nil && p.Pool != "" {
			n.IPAMPools = append(n.IPAMPools, p.Pool)
		}
	}
	for _, p := range req.IPv6Data {
		if p != nil && p.Pool != "" {
			n.IPAMPools = append(n.IPAMPools, p.Pool)
		}
	}
	rec := d.record(audit.NetworkCreate, n)
	rec.Options, rec.IPAMPools = n.Options, n.IPAMPools
	if n.ID == "" {
		return d.refuse(rec, invalid("CreateNetwork request has no NetworkID"))
	}
	tag, err := parseGeneric(req.Options[genericOptions])
	if err != nil {
		return d.refuse(rec, err)
	}
	n.Tag, rec.Tag = tag, tag
	for _, pool := range n.IPAMPools {
		if pool != nullPool {
			d.cfg.Log.WithField("network", n.ID).WithField("pool", pool).
				Warn("network has an IPAM pool, but hostpass hands out no addresses: Docker will show addresses no interface carries; create it with --ipam-driver null")
			break
		}
	}

	d.mu.Lock()
	old, existed := d.networks[n.ID]
	d.networks[n.ID] = n
	d.mu.Unlock()
	if err := d.save(); err != nil {
		d.restore(n.ID, old, existed)
		return d.refuse(rec, err)
	}
	if err := d.commit(rec); err != nil {
		d.restore(n.ID, old, existed)
		d.save()
		return err
	}
	return nil
}

// DeleteNetwork forgets the network. Teardown is never refused and may be
// repeated.
func (d *Driver) DeleteNetwork(req *network.DeleteNetworkRequest) error {
	n := d.known(req.NetworkID)
	d.mu.Lock()
	delete(d.networks, req.NetworkID)
	d.mu.Unlock()
	if err := d.save(); err != nil {
		d.cfg.Log.WithError(err).WithField("network", n.ID).Error("network deleted, but the state file still lists it")
	}
	d.keep(d.record(audit.NetworkDelete, n))
	return nil
}

// network returns the network with id. One hostpass never saw is adopted:
// Docker never re-sends CreateNetwork, so refusing it would break every
// container on it after hostpass lost its state.
func (d *Driver) network(id string) Network {
	d.mu.Lock()
	n, known := d.networks[id]
	if !known {
		n = Network{ID: id, Adopted: true}
		d.networks[id] = n
	}
	d.mu.Unlock()
	if !known {
		d.cfg.Log.WithField("network", id).Warn("adopting a network hostpass has no record of; its tag is unknown")
		if err := d.save(); err != nil {
			d.cfg.Log.WithError(err).WithField("network", id).Error("cannot save the adopted network")
		}
	}
	return n
}

// known returns the network with id without adopting it: teardown of a
// network hostpass has no record of is served and audited, not remembered.
func (d *Driver) known(id string) Network {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, ok := d.networks[id]; ok {
		return n
	}
	return Network{ID: id, Adopted: true}
}

func (d *Driver) restore(id string, old Network, existed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if existed {
		d.networks[id] = old
	} else {
		delete(d.networks, id)
	}
}

// save writes every known network to the state directory.
func (d *Driver) save() error {
	d.store.mu.Lock() // serialises saves so the last one written is the newest
	defer d.store.mu.Unlock()
	d.mu.Lock()
	snapshot := make([]Network, 0, len(d.networks))
	for _, n := range d.networks {
		snapshot = append(snapshot, n)
	}
	d.mu.Unlock()
	if err := d.store.save(snapshot); err != nil {
		return unavailable("cannot save hostpass state: %v", err)
	}
	return nil
}

// parseGeneric checks the -o options and returns the tag.
func parseGeneric(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	opts, ok := v.(map[string]any)
	if !ok {
		return "", invalid("%s must be an object of -o key=value options, got %T", genericOptions, v)
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var tag string
	for _, k := range keys {
		if k != tagOption {
			return "", invalid("unknown network option %q; accepted options: %s", k, strings.Join(acceptedOptions, ", "))
		}
		s, ok := opts[k].(string)
		if !ok {
			return "", invalid("network option %q must be text, got %v", k, opts[k])
		}
		tag = s
	}
	return tag, nil
}

// isTrue reads a boolean option, which Docker sends as a JSON bool (older
// clients as a string).
func isTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}

// Knows reports whether id is a network hostpass serves (created or
// adopted), and its tag, for the watcher's attribution.
func (d *Driver) Knows(id string) (tag string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[id]
	return n.Tag, ok
}

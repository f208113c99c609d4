package driver

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

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

// maxTag bounds the tag, in bytes: it is carried into every record of the
// network, so its length multiplies with every call.
const maxTag = 256

// maxQuoted bounds how much of a rejected option name an error quotes.
const maxQuoted = 64

// nullPools are the pools Docker sends with --ipam-driver null: IPv4's,
// and from Docker 28 with --ipv6 IPv6's too (moby commit 6fe26e0629). Any
// other pool means Docker's IPAM hands out addresses.
var nullPools = []string{"0.0.0.0/0", "::/0"}

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
	n := Network{ID: req.NetworkID, Options: withoutTag(req.Options), Internal: isTrue(req.Options[internalOption])}
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
	if !isNetworkID(n.ID) {
		return d.refuse(rec, invalid("CreateNetwork request names network %s: Docker's network IDs are 64 lowercase hex digits, or 25 lowercase letters and digits for a swarm-scope network", quote(n.ID)))
	}
	tag, err := parseGeneric(req.Options[genericOptions])
	if err != nil {
		// What was refused stays on record as received, the log cuts it
		// to its bound.
		rec.Options = req.Options
		return d.refuse(rec, err)
	}
	n.Tag, rec.Tag = tag, tag
	for _, pool := range n.IPAMPools {
		if !slices.Contains(nullPools, pool) {
			d.cfg.Log.WithField("network", n.ID).WithField("pool", pool).
				Warn("network has an IPAM pool, but hostpass hands out no addresses: Docker will show addresses no interface carries; create it with --ipam-driver null")
			break
		}
	}

	d.mu.Lock()
	old, existed := d.networks[n.ID]
	d.put(n)
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
// repeated. Deleting a network hostpass does not know changes nothing, so
// it does not rewrite the state: a flood of unknown IDs costs no fsync.
func (d *Driver) DeleteNetwork(req *network.DeleteNetworkRequest) error {
	n := d.known(req.NetworkID)
	d.mu.Lock()
	_, existed := d.networks[req.NetworkID]
	d.forget(req.NetworkID)
	d.mu.Unlock()
	if existed {
		if err := d.save(); err != nil {
			d.cfg.Log.WithError(err).WithField("network", n.ID).Error("network deleted, but the state file still lists it")
		}
	}
	d.keep(d.record(audit.NetworkDelete, n))
	return nil
}

// setup checks the request of a call that sets something up, then returns
// its network (network); on refusal, the network if known, for the record.
func (d *Driver) setup(call, networkID, endpointID string) (Network, error) {
	if endpointID == "" {
		d.mu.Lock()
		n := d.networks[networkID]
		d.mu.Unlock()
		return n, invalid("%s request has no EndpointID", call)
	}
	return d.network(call, networkID)
}

// network returns the network with id for a call that sets something up.
// One hostpass never saw is adopted: Docker never re-sends CreateNetwork,
// so refusing it would break every container on it after hostpass lost its
// state. Only an ID Docker could have made is adopted, and an adoption
// appends one line to the state (store.adopt) rather than rewriting it.
// At most maxAdopted adopted networks are remembered; beyond that, a call
// on an unknown network is still served and audited as adopted, but the
// network is not remembered.
func (d *Driver) network(call, id string) (Network, error) {
	d.mu.Lock()
	n, known := d.networks[id]
	adopt := !known && isNetworkID(id)
	remember := adopt && d.adopted < maxAdopted
	warnFull := adopt && !remember && !d.full
	if adopt {
		n = Network{ID: id, Adopted: true}
	}
	if remember {
		d.put(n)
		d.full = false // the next time the limit is hit is logged again
	}
	if warnFull {
		d.full = true
	}
	d.mu.Unlock()
	switch {
	case known:
		return n, nil
	case id == "":
		return n, invalid("%s request has no NetworkID", call)
	case !adopt:
		return n, invalid("%s request names network %s, which hostpass has no record of and will not adopt: Docker's network IDs are 64 lowercase hex digits, or 25 lowercase letters and digits for a swarm-scope network", call, quote(id))
	case !remember:
		if warnFull {
			d.cfg.Log.WithField("network", id).WithField("limit", maxAdopted).
				Warn("hostpass remembers this many adopted networks already: calls on further unknown networks are served and audited as adopted, but not remembered")
		}
		return n, nil
	}
	d.cfg.Log.WithField("network", id).Warn("adopting a network hostpass has no record of; its tag is unknown")
	if err := d.remember(n); err != nil {
		d.cfg.Log.WithError(err).WithField("network", id).Error("cannot save the adopted network; it is adopted again after a restart")
	}
	return n, nil
}

// isNetworkID reports whether id has the form of a network ID Docker makes:
// 64 lowercase hex digits for a local network, or, for a swarm-scope one,
// swarmkit's 25 base-36 characters (a 128-bit random number, zero-padded).
func isNetworkID(id string) bool {
	switch len(id) {
	case 64:
		return onlyBytes(id, "0123456789abcdef")
	case 25:
		return onlyBytes(id, "0123456789abcdefghijklmnopqrstuvwxyz")
	}
	return false
}

func onlyBytes(s, allowed string) bool {
	for _, c := range []byte(s) {
		if strings.IndexByte(allowed, c) < 0 {
			return false
		}
	}
	return true
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

// restore undoes, in memory, what a CreateNetwork that failed to save or
// to audit put in networks.
func (d *Driver) restore(id string, old Network, existed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if existed {
		d.put(old)
	} else {
		d.forget(id)
	}
}

// put and forget change networks and keep the count of adopted ones. The
// caller holds mu.
func (d *Driver) put(n Network) {
	d.forget(n.ID)
	d.networks[n.ID] = n
	if n.Adopted {
		d.adopted++
	}
}

func (d *Driver) forget(id string) {
	if old, ok := d.networks[id]; ok && old.Adopted {
		d.adopted--
	}
	delete(d.networks, id)
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
			return "", invalid("unknown network option %s; accepted options: %s", quote(k), strings.Join(acceptedOptions, ", "))
		}
		s, ok := opts[k].(string)
		if !ok {
			return "", invalid("network option %q must be text, got %s", k, shorten(fmt.Sprint(opts[k])))
		}
		if len(s) > maxTag {
			return "", invalid("network option %q is %d bytes; the limit is %d bytes", k, len(s), maxTag)
		}
		tag = s
	}
	return tag, nil
}

// withoutTag returns Docker's options for the record and the state without
// the tag, which both keep in their tag field: a long value is never stored
// twice.
func withoutTag(opts map[string]any) map[string]any {
	generic, ok := opts[genericOptions].(map[string]any)
	if _, tagged := generic[tagOption]; !ok || !tagged {
		return opts
	}
	out := make(map[string]any, len(opts))
	for k, v := range opts {
		out[k] = v
	}
	rest := make(map[string]any, len(generic))
	for k, v := range generic {
		if k != tagOption {
			rest[k] = v
		}
	}
	delete(out, genericOptions)
	if len(rest) > 0 {
		out[genericOptions] = rest
	}
	return out
}

// quote quotes s for an error message, cut to maxQuoted bytes: an error
// must not grow with a hostile request.
func quote(s string) string {
	head, rest := cut(s)
	return strconv.Quote(head) + rest
}

// shorten is s for an error message, cut to maxQuoted bytes.
func shorten(s string) string {
	head, rest := cut(s)
	return head + rest
}

func cut(s string) (head, rest string) {
	if len(s) <= maxQuoted {
		return s, ""
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], fmt.Sprintf("… (%d bytes)", len(s))
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

// Package driver is hostpass's network driver. Like Docker's built-in host
// driver it hands out no interfaces, addresses or routes; unlike it, every
// lifecycle call leaves a durable audit record before Docker hears "ok".
package driver

import (
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
)

// Config is what the daemon wires into the driver.
type Config struct {
	Name     string // the driver name Docker uses (-d NAME)
	Hostname string
	StateDir string
	Audit    *audit.Log
	// HostInterfaces returns the host's links. Every join names the view
	// it saw; the audit log records each view once, as host.view. The
	// slice may be shared (hostview makes one per change of the links):
	// nothing here modifies it.
	HostInterfaces func() []audit.Interface
	Log            *logrus.Entry
	Now            func() time.Time // time.Now when nil
}

// Driver implements network.Driver.
type Driver struct {
	cfg   Config
	store *store

	// mu guards networks, adopted, full and unusedAddress. Never held across
	// disk I/O.
	mu       sync.Mutex
	networks map[string]Network
	// adopted counts the adopted networks in networks, at most maxAdopted
	// once loaded; full says the limit was hit and logged.
	adopted int
	full    bool
	// unusedAddress is the address Docker offered each endpoint, which
	// hostpass did not use: EndpointInfo shows it. It is all hostpass
	// keeps of an endpoint: an address prefix, by endpointKey; an endpoint
	// offered none, or with an ID or address of another form, has no entry.
	unusedAddress map[[32]byte]string
}

// maxAdopted bounds the adopted networks hostpass remembers: each is a line
// of the state, rewritten and fsynced with it at every CreateNetwork, and
// anyone who can reach the socket can name new 64-hex IDs. A host that
// lost hostpass's state adopts as many networks as it has hostpass
// networks, a handful to hundreds; 4096 leaves room for that and keeps
// networks.json near half a megabyte (530 kB). Beyond it an unknown
// network is served and audited as adopted on every call, as it would be
// after a restart, but is not remembered: its only loss is that the
// watcher does not see it as hostpass's (Lookup). Evicting the oldest
// instead would forget networks in use, and a flood would evict them all.
const maxAdopted = 4096

var _ network.Driver = (*Driver)(nil)

// New loads the networks saved in cfg.StateDir. A state file that cannot be
// read stops the daemon rather than being overwritten.
func New(cfg Config) (*Driver, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HostInterfaces == nil {
		cfg.HostInterfaces = func() []audit.Interface { return nil }
	}
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	d := &Driver{cfg: cfg, store: newStore(cfg.StateDir), networks: map[string]Network{}, unusedAddress: map[[32]byte]string{}}
	if err := d.load(); err != nil {
		return nil, err
	}
	return d, nil
}

// GetCapabilities: like the host driver, local scope.
func (d *Driver) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: network.LocalScope, ConnectivityScope: network.LocalScope}, nil
}

// GetSkipGwAlloc answers Docker 28 and later, before each CreateNetwork,
// whether the network needs a gateway address: never, since hostpass hands
// out no addresses, so Docker reserves none (unless --gateway names one).
// It answers so whatever the options, and cannot refuse: a refusal here
// would fail the create before CreateNetwork, invisible to the audit trail;
// CreateNetwork refuses what it must, and records it.
func (d *Driver) GetSkipGwAlloc(map[string]any) (skipIPv4, skipIPv6 bool) {
	return true, true
}

// record starts an audit record for a call on network n.
func (d *Driver) record(event audit.Event, n Network) audit.Record {
	rec := audit.Record{
		Time:      d.cfg.Now().UTC(),
		Event:     event,
		Outcome:   audit.OK,
		Driver:    d.cfg.Name,
		Host:      d.cfg.Hostname,
		NetworkID: n.ID,
		Tag:       n.Tag,
	}
	if n.ID != "" { // a malformed request names no network
		rec.Internal, rec.Adopted = audit.Flag(n.Internal), audit.Flag(n.Adopted)
	}
	return rec
}

// commit makes rec durable before a create or join is allowed. If the audit
// log cannot take it, the call is refused, and the refusal is kept in memory
// until the log can take it.
func (d *Driver) commit(rec audit.Record) error {
	err := d.cfg.Audit.Append(rec)
	if err == nil {
		return nil
	}
	rec.Outcome, rec.Error, rec.View = audit.Refused, err.Error(), nil // a refused join exposed nothing
	d.cfg.Audit.AppendOrKeep(rec)
	d.cfg.Log.WithError(err).WithField("event", rec.Event).Error("audit log unavailable: refusing the call")
	return unavailable("%w; refusing %s so that nothing joins unaudited", err, rec.Event)
}

// keep records teardown, which is never refused: a record the log cannot take
// now is written as soon as it can.
func (d *Driver) keep(rec audit.Record) {
	if err := d.cfg.Audit.AppendOrKeep(rec); err != nil {
		d.cfg.Log.WithError(err).WithField("event", rec.Event).
			Error("audit log unavailable: teardown record kept in memory until the log is writable")
	}
}

// refuse records a refused call and returns err for Docker.
func (d *Driver) refuse(rec audit.Record, err error) error {
	rec.Outcome, rec.Error, rec.View = audit.Refused, err.Error(), nil // a refused join exposed nothing
	d.keep(rec)
	return err
}

// The calls below do nothing, as in Docker's host driver.

func (d *Driver) AllocateNetwork(*network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return nil, invalid("AllocateNetwork is for swarm-scope drivers; hostpass is local scope")
}
func (d *Driver) FreeNetwork(*network.FreeNetworkRequest) error {
	return invalid("FreeNetwork is for swarm-scope drivers; hostpass is local scope")
}
func (d *Driver) DiscoverNew(*network.DiscoveryNotification) error    { return nil }
func (d *Driver) DiscoverDelete(*network.DiscoveryNotification) error { return nil }
func (d *Driver) ProgramExternalConnectivity(*network.ProgramExternalConnectivityRequest) error {
	return nil
}
func (d *Driver) RevokeExternalConnectivity(*network.RevokeExternalConnectivityRequest) error {
	return nil
}

// Malformed records a lifecycle call whose body the server could not
// decode: refused, under its audit event, with err, the error the server
// answers. The record names no network, since the request named none that
// could be read.
func (d *Driver) Malformed(event audit.Event, err error) {
	d.refuse(d.record(event, Network{}), err)
}

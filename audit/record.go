package audit

import (
	"slices"
	"time"
)

// Schema is the version of the record format this package writes, carried
// by every record as "schema". Records without it were written by hostpass
// 1 to 3 (schema 1). docs/audit.md describes each version.
const Schema = 2

// Event is a record's kind: what happened.
type Event string

// Events, one per lifecycle call of Docker's remote network driver API.
const (
	NetworkCreate  Event = "network.create"
	NetworkDelete  Event = "network.delete"
	EndpointCreate Event = "endpoint.create"
	EndpointJoin   Event = "endpoint.join"
	EndpointLeave  Event = "endpoint.leave"
	EndpointDelete Event = "endpoint.delete"

	// Written by the watcher, from Docker's events.
	EndpointAttribute Event = "endpoint.attribute" // which container is behind an endpoint
	HostJoin          Event = "host.join"          // a container got --network host
	HostLeave         Event = "host.leave"         // and left it (disconnect or death)
	PolicyViolation   Event = "policy.violation"   // a container not allowed on hostpass networks joined one
	// ContainerUnplaced: a running container the watcher cannot place: it
	// shares the network namespace of a container Docker no longer knows,
	// or Docker never answered an inspect of it.
	ContainerUnplaced Event = "container.unplaced"
	// EndpointStale: an attributed endpoint whose container is no longer
	// running, and of which the log holds no endpoint.leave: Docker never
	// called the driver's Leave for it (its daemon restarted after a
	// crash, say). Written by reconciliation, observed late, before the
	// watcher forgets the attribution.
	EndpointStale Event = "endpoint.stale"

	// The host's interfaces, written when they change; joins name it.
	HostView Event = "host.view"

	// Written by the log itself.
	EpochEnd Event = "audit.epoch"     // the sealing key evolves: epoch ends here
	TornTail Event = "audit.torn_tail" // a crash left a partial line; it was set aside
	Lost     Event = "audit.lost"      // records that could not be kept during an outage

	// Issue 10. Each joins its writer's list below (LogEvents, WatcherEvents)
	// and docs/audit.schema.json's event enum when its writer is built.
	Checkpoint Event = "audit.checkpoint" // a signed checkpoint of the tree of the records before it
	Restart    Event = "audit.restart"    // the daemon started on a log that has records: where it ended, clean or not
	Stop       Event = "audit.stop"       // the daemon stopped cleanly: the last record it wrote
	WatchGap   Event = "watch.gap"        // a window in which the watcher was not following Docker's events
)

// Why an audit.checkpoint was written, its record's "checkpoint_reason".
const (
	CheckpointStart     = "start"     // the daemon started
	CheckpointRecords   = "records"   // N records since the last checkpoint
	CheckpointInterval  = "interval"  // T since the last checkpoint, with records written since
	CheckpointHeartbeat = "heartbeat" // idle: nothing written for the heartbeat interval
	CheckpointEpoch     = "epoch"     // the signing epoch ends: the last checkpoint under its key
	CheckpointStop      = "stop"      // a clean stop
)

// CheckpointReasons lists every "checkpoint_reason", as docs/audit.md and
// docs/audit.schema.json list them.
var CheckpointReasons = []string{CheckpointStart, CheckpointRecords, CheckpointInterval, CheckpointHeartbeat, CheckpointEpoch, CheckpointStop}

// Outcome is whether a call was served.
type Outcome string

// Outcomes of a call.
const (
	OK      Outcome = "ok"
	Refused Outcome = "refused"
)

// The event kinds by the package that writes them, as docs/audit.md lists
// them. Tests write a record of each kind through its writer and check it
// against docs/audit.schema.json (audit/schematest).
var (
	DriverEvents  = []Event{NetworkCreate, NetworkDelete, EndpointCreate, EndpointJoin, EndpointLeave, EndpointDelete}
	WatcherEvents = []Event{EndpointAttribute, HostJoin, HostLeave, PolicyViolation, ContainerUnplaced, WatchGap, EndpointStale}
	LogEvents     = []Event{HostView, EpochEnd, TornTail, Lost, Checkpoint, Restart, Stop}

	// Events is every event kind.
	Events = slices.Concat(DriverEvents, WatcherEvents, LogEvents)
)

// Outcomes lists every outcome.
var Outcomes = []Outcome{OK, Refused}

// What the watcher did about a policy.violation, its record's "action".
const (
	ActionRecorded   = "recorded"    // recorded only
	ActionStopped    = "stopped"     // the container was stopped (--policy-stop)
	ActionStopFailed = "stop failed" // the stop failed: the record is refused, with the error
)

// Actions lists every action, as docs/audit.md and docs/audit.schema.json
// list them.
var Actions = []string{ActionRecorded, ActionStopped, ActionStopFailed}

// What a join's SandboxKey named when hostpass looked, at Join: its record's
// "sandbox". Docker 28 and later call Join once the container's namespace
// is bound at the key; older engines bind it later, as the container starts.
const (
	SandboxLive     = "live"      // a network namespace is mounted at the path
	SandboxAbsent   = "absent"    // nothing is at the path; its directory is there
	SandboxNotNetns = "not_netns" // something is at the path, not a network namespace
	// SandboxUnseen: hostpass cannot tell. The directory is not visible to
	// it (a managed plugin runs in a mount namespace of its own, without
	// Docker's exec root), or the path could not be examined.
	SandboxUnseen = "unseen"
)

// SandboxStates lists every "sandbox" value, as docs/audit.md and
// docs/audit.schema.json list them.
var SandboxStates = []string{SandboxLive, SandboxAbsent, SandboxNotNetns, SandboxUnseen}

// Interface is one host link as the audit trail records it. hostview fills
// it; it lives here, with the record schema, so that reading a log needs
// nothing Linux-only.
type Interface struct {
	Name  string   `json:"name"`
	Index int      `json:"index"`
	MAC   string   `json:"mac,omitempty"`
	MTU   int      `json:"mtu"`
	Up    bool     `json:"up"`
	Addrs []string `json:"addrs,omitempty"`
}

// Flag returns a pointer to b, for the record fields that are omitted where
// they do not apply (internal, adopted).
func Flag(b bool) *bool { return &b }

// Container is what the audit trail says of a container.
type Container struct {
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Image      string            `json:"image,omitempty"`
	ImageID    string            `json:"image_id,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Privileged bool              `json:"privileged"`
	CapAdd     []string          `json:"cap_add,omitempty"`
	Ports      []string          `json:"published_ports,omitempty"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
}

// LostRecords counts records dropped during an outage, and when the first
// and the last of them were made.
type LostRecords struct {
	Records int       `json:"records"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
}

// LogEnd is the last record of a log as a restarted daemon found it.
type LogEnd struct {
	Seq   uint64    `json:"seq"`
	Hash  string    `json:"hash"`
	Time  time.Time `json:"time"`
	Event Event     `json:"event"`
}

// Gap is a window in which the watcher did not follow Docker's events.
// Covered: Docker's replay of its events from From (or the watcher's
// reconciliation with the running containers) is known to cover the
// whole window.
type Gap struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Covered bool      `json:"covered"`
}

// SwarmTask is a swarm task's identity, as its container's labels state
// it (package swarmtask reads them). It proves only what the labels say:
// swarm sets them on the containers of its tasks, but anyone can set the
// same labels on a plain container.
type SwarmTask struct {
	ServiceName string `json:"service_name"`
	ServiceID   string `json:"service_id"`
	TaskID      string `json:"task_id"`
	TaskName    string `json:"task_name,omitempty"`
	// Slot: a replicated service's (or a job's) slot, from the task name;
	// absent for a global service's task, which is one per node.
	Slot   int    `json:"slot,omitempty"`
	NodeID string `json:"node_id"`
	// Stack: the stack namespace, on tasks of a `docker stack deploy`.
	Stack string `json:"stack,omitempty"`
}

// ContainerRef names a container another record is about.
type ContainerRef struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Record is one line of the audit log, and the one declaration of its
// schema in code. docs/audit.md's field table and docs/audit.schema.json
// describe it; schema_test.go fails when the three disagree.
type Record struct {
	// Time is when hostpass handled the call (UTC); Seq is assigned when the
	// record reaches the disk, so records kept back while the log was
	// unwritable carry the seq of the moment they were written.
	Time    time.Time `json:"time"`
	Seq     uint64    `json:"seq"`
	Event   Event     `json:"event"`
	Schema  int       `json:"schema"`
	Outcome Outcome   `json:"outcome"`
	Error   string    `json:"error,omitempty"`

	// Driver is the plugin's driver name, on records of hostpass networks
	// only: host.* records are about Docker's own host driver.
	Driver     string `json:"driver,omitempty"`
	Host       string `json:"host"`
	NetworkID  string `json:"network_id,omitempty"`
	EndpointID string `json:"endpoint_id,omitempty"`
	SandboxKey string `json:"sandbox_key,omitempty"`
	// Sandbox: what SandboxKey named at Join, one of SandboxStates.
	Sandbox string `json:"sandbox,omitempty"`
	Tag     string `json:"tag,omitempty"`
	// Internal and Adopted describe the hostpass network of the record;
	// absent on records that are about no hostpass network. Adopted is
	// true when the plugin had no record of the network (its state was
	// lost, or it never saw CreateNetwork) and served the call.
	Internal *bool `json:"internal,omitempty"`
	Adopted  *bool `json:"adopted,omitempty"`

	Options   map[string]any `json:"options,omitempty"`
	IPAMPools []string       `json:"ipam_pools,omitempty"`
	// Address and AddressIPv6: what Docker's IPAM offered CreateEndpoint;
	// hostpass hands out neither, no interface carries them.
	Address     string `json:"address,omitempty"`
	AddressIPv6 string `json:"address_ipv6,omitempty"`
	Detail      string `json:"detail,omitempty"`

	// The host's links (view.go). View is what the call saw: it is not
	// written as such; the log writes it as a host.view record ahead of
	// this one when it differs from the last view written, and names that
	// record in HostView. A host.view record holds the view in full
	// (HostInterfaces, at most viewBudget bytes of links in index order,
	// OmittedInterfaces counting the rest), or as the change from the view
	// before it (BaseView): the links added or changed, and the indexes of
	// the links gone.
	View              []Interface `json:"-"`
	HostView          string      `json:"host_view,omitempty"`
	HostInterfaces    []Interface `json:"host_interfaces,omitempty"`
	OmittedInterfaces int         `json:"omitted_interfaces,omitempty"`
	BaseView          string      `json:"base_view,omitempty"`
	ChangedInterfaces []Interface `json:"changed_interfaces,omitempty"`
	RemovedInterfaces []int       `json:"removed_interfaces,omitempty"`

	// Attribution, from the watcher.
	Container     *Container        `json:"container,omitempty"`
	NetworkName   string            `json:"network_name,omitempty"`
	NetworkLabels map[string]string `json:"network_labels,omitempty"`
	// Via: the container whose network namespace Container shares
	// (--network container:X): on host.* records when X is in host mode, on
	// endpoint.attribute and policy.violation when X owns the endpoint.
	Via *ContainerRef `json:"via,omitempty"`
	// ObservedLate: the watcher found this by reconciling with the running
	// containers (after a reconnect or its own start), not from the event.
	ObservedLate bool `json:"observed_late,omitempty"`
	// Swarm: on watcher records of a swarm task's container, its service,
	// task and node, from the container's labels (not proof: see SwarmTask).
	Swarm *SwarmTask `json:"swarm,omitempty"`
	// HostModeSeconds: on host.leave, how long the container had host mode.
	HostModeSeconds *float64 `json:"host_mode_seconds,omitempty"`
	// EndedAt: on endpoint.stale, when the endpoint's container stopped,
	// as Docker still says (inspect's FinishedAt, or its die event); absent
	// when Docker no longer says.
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// Policy: on policy.violation, the rule set the container failed, and
	// Action what hostpass did (one of Actions).
	Policy string `json:"policy,omitempty"`
	Action string `json:"action,omitempty"`

	// Lost: on audit.lost, the teardown records that were dropped while
	// the log was unwritable (see Options.MaxKept).
	Lost *LostRecords `json:"lost,omitempty"`

	// Checkpoint: on audit.checkpoint, the signed checkpoint (a C2SP signed
	// note, whole) of the Merkle tree of every record before this one, and
	// CheckpointReason why it was written (one of CheckpointReasons).
	// KeyCert: on audit.epoch of a signed log, the next epoch's signing key
	// certified by this epoch's key (a signed note).
	Checkpoint       string `json:"checkpoint,omitempty"`
	CheckpointReason string `json:"checkpoint_reason,omitempty"`
	KeyCert          string `json:"key_cert,omitempty"`
	// LogEnd and CleanStop: on audit.restart, the log's last record when
	// the daemon started, and whether the daemon that wrote it stopped
	// cleanly (its last record is audit.stop).
	LogEnd    *LogEnd `json:"log_end,omitempty"`
	CleanStop *bool   `json:"clean_stop,omitempty"`
	// Gap: on watch.gap, the window the watcher was not following events.
	Gap *Gap `json:"gap,omitempty"`

	// Truncated names the fields the log cut to keep the record under
	// MaxRecord bytes (bound.go): a cut string ends in "…", a cut list or
	// map lost its last entries.
	Truncated []string `json:"truncated,omitempty"`

	// The chain (see chain.go). Epoch is set in sealed and signed logs only; NextEpoch
	// only on audit.epoch records. Hash is always the line's last member.
	Epoch     *uint64 `json:"epoch,omitempty"`
	NextEpoch *uint64 `json:"next_epoch,omitempty"`
	Prev      string  `json:"prev"`
	Hash      string  `json:"hash,omitempty"`
}

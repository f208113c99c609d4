// Package audit keeps hostpass's audit trail: an append-only file of JSON
// lines, one record per lifecycle call, each fsynced before Docker hears "ok".
package audit

import (
	"time"

	"github.com/hostpass/hostpass/hostview"
)

// Events, one per lifecycle call of Docker's remote network driver API.
const (
	NetworkCreate  = "network.create"
	NetworkDelete  = "network.delete"
	EndpointCreate = "endpoint.create"
	EndpointJoin   = "endpoint.join"
	EndpointLeave  = "endpoint.leave"
	EndpointDelete = "endpoint.delete"

	// Written by the log itself.
	EpochEnd = "audit.epoch"     // the sealing key evolves: epoch ends here
	TornTail = "audit.torn_tail" // a crash left a partial line; it was set aside
)

// Outcomes of a call.
const (
	OK      = "ok"
	Refused = "refused"
)

// Record is one line of the audit log. docs/audit.md is its schema; keep the
// two in step.
type Record struct {
	// Time is when hostpass handled the call (UTC); Seq is assigned when the
	// record reaches the disk, so records kept back while the log was
	// unwritable carry the seq of the moment they were written.
	Time    time.Time `json:"time"`
	Seq     uint64    `json:"seq"`
	Event   string    `json:"event"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`

	Driver     string `json:"driver"`
	Host       string `json:"host"`
	NetworkID  string `json:"network_id"`
	EndpointID string `json:"endpoint_id,omitempty"`
	SandboxKey string `json:"sandbox_key,omitempty"`
	Tag        string `json:"tag,omitempty"`
	Internal   bool   `json:"internal"`
	// Adopted is true when the plugin had no record of the network (its
	// state was lost, or it never saw CreateNetwork) and served the call.
	Adopted bool `json:"adopted"`

	Options        map[string]any       `json:"options,omitempty"`
	IPAMPools      []string             `json:"ipam_pools,omitempty"`
	Address        string               `json:"address,omitempty"`
	HostInterfaces []hostview.Interface `json:"host_interfaces,omitempty"`
	Detail         string               `json:"detail,omitempty"`

	// The chain (see chain.go). Epoch is set in sealed logs only; NextEpoch
	// only on audit.epoch records. Hash is always the line's last member.
	Epoch     *uint64 `json:"epoch,omitempty"`
	NextEpoch *uint64 `json:"next_epoch,omitempty"`
	Prev      string  `json:"prev"`
	Hash      string  `json:"hash,omitempty"`
}

//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// recordsReady bounds waitAudit: a watcher in backoff after a dockerd
// restart may take a while.
const recordsReady = 30 * time.Second

// hostInterface is one element of a join record's host_interfaces.
type hostInterface struct {
	Name  string          `json:"name"`
	Index int             `json:"index"`
	MAC   string          `json:"mac"`
	MTU   int             `json:"mtu"`
	Up    bool            `json:"up"`
	Addrs json.RawMessage `json:"addrs"`
}

// record is one audit log line as the suite reads it. It is the suite's own
// copy of the format, on purpose not audit's types: a change to what the
// writer puts on disk must fail here, not be followed silently.
type record struct {
	Time           string          `json:"time"`
	Seq            int64           `json:"seq"`
	Event          string          `json:"event"`
	Outcome        string          `json:"outcome"`
	Error          string          `json:"error"`
	NetworkID      string          `json:"network_id"`
	EndpointID     string          `json:"endpoint_id"`
	SandboxKey     string          `json:"sandbox_key"`
	Sandbox        string          `json:"sandbox"`
	Tag            string          `json:"tag"`
	Options        map[string]any  `json:"options"`
	Internal       bool            `json:"internal"`
	IPAMPools      []string        `json:"ipam_pools"`
	AddressIPv6    string          `json:"address_ipv6"`
	Host           string          `json:"host"`
	HostInterfaces []hostInterface `json:"host_interfaces"`
	Adopted        bool            `json:"adopted"`
	Driver         string          `json:"driver"`
	// From the watcher.
	Container *struct {
		ID         string            `json:"id"`
		Name       string            `json:"name"`
		Image      string            `json:"image"`
		ImageID    string            `json:"image_id"`
		Labels     map[string]string `json:"labels"`
		Privileged bool              `json:"privileged"`
		CapAdd     []string          `json:"cap_add"`
		Ports      []string          `json:"published_ports"`
		StartedAt  string            `json:"started_at"`
	} `json:"container"`
	// A swarm task's identity, from its container's labels.
	Swarm *struct {
		ServiceName string `json:"service_name"`
		ServiceID   string `json:"service_id"`
		TaskID      string `json:"task_id"`
		TaskName    string `json:"task_name"`
		Slot        int    `json:"slot"`
		NodeID      string `json:"node_id"`
		Stack       string `json:"stack"`
	} `json:"swarm"`
	NetworkName     string            `json:"network_name"`
	NetworkLabels   map[string]string `json:"network_labels"`
	ObservedLate    bool              `json:"observed_late"`
	HostModeSeconds *float64          `json:"host_mode_seconds"`
	EndedAt         string            `json:"ended_at"`
	Policy          string            `json:"policy"`
	Action          string            `json:"action"`
	Detail          string            `json:"detail"`
	// Schema 2: the host view a join saw, the host.view record's links
	// beyond its bound, and the fields the log cut to its bound.
	HostView          string          `json:"host_view"`
	OmittedInterfaces int             `json:"omitted_interfaces"`
	BaseView          string          `json:"base_view"`
	ChangedInterfaces []hostInterface `json:"changed_interfaces"`
	RemovedInterfaces []int           `json:"removed_interfaces"`
	Truncated         []string        `json:"truncated"`

	line  string // as written, for failure messages
	views int    // host.view and run records (runMarks) right before this one, which readAudit leaves out
}

// readAudit parses an audit log, every line a JSON record, and returns the
// records but host.view: a record that names a view gets its links in
// HostInterfaces, as `audit show --json --interfaces` prints it. It leaves
// out the records that mark a daemon's runs too (audit.restart, audit.stop,
// audit.checkpoint), so that the tests count the records of the calls and
// containers they are about; readAuditAll has them, and signed_test.go and
// crash_test.go check them.
func readAudit(t testing.TB, path string) []record {
	t.Helper()
	var out []record
	views, skipped := map[string][]hostInterface{}, 0
	for _, r := range readAuditAll(t, path) {
		if r.Event == "host.view" {
			// In full, or the change from the view named in base_view.
			links := map[int]hostInterface{}
			for _, l := range views[r.BaseView] {
				links[l.Index] = l
			}
			for _, l := range append(r.HostInterfaces, r.ChangedInterfaces...) {
				links[l.Index] = l
			}
			for _, i := range r.RemovedInterfaces {
				delete(links, i)
			}
			var view []hostInterface
			for _, l := range links {
				view = append(view, l)
			}
			sort.Slice(view, func(i, j int) bool { return view[i].Index < view[j].Index })
			views[r.HostView] = view
			skipped++
			continue
		}
		if runMarks[r.Event] {
			skipped++
			continue
		}
		if r.HostView != "" {
			r.HostInterfaces = views[r.HostView]
		}
		r.views, skipped = skipped, 0
		out = append(out, r)
	}
	return out
}

// runMarks are the records the log writes at a daemon's start and stop,
// and a signed log's checkpoints.
var runMarks = map[string]bool{"audit.restart": true, "audit.stop": true, "audit.checkpoint": true}

// readAuditAll parses an audit log; every line must be a JSON record.
func readAuditAll(t testing.TB, path string) []record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatalf("read audit log: %v", err)
	}
	var recs []record
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit log %s line %d is not a JSON record: %v\n%s", path, i+1, err, line)
		}
		r.line = line
		recs = append(recs, r)
	}
	return recs
}

// waitAudit polls the audit log until ok accepts its records.
func waitAudit(t testing.TB, path string, what string, ok func([]record) bool) []record {
	t.Helper()
	deadline := time.Now().Add(recordsReady)
	for {
		recs := readAudit(t, path)
		if ok(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit log %s: %s not seen within %s; log:\n%s", path, what, recordsReady, dumpRecords(recs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCount waits until the audit log holds at least n records.
func waitCount(t testing.TB, path string, n int) []record {
	t.Helper()
	return waitAudit(t, path, "record count", func(r []record) bool { return len(r) >= n })
}

func dumpRecords(recs []record) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.line)
		b.WriteByte('\n')
	}
	return b.String()
}

// fields returns the names of a record's members as written.
func fields(t testing.TB, r record) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.line), &m); err != nil {
		t.Fatalf("record %s: %v", r.line, err)
	}
	return m
}

// checkSeq asserts seq runs 1, 2, 3, ... over the whole log: no gap, no repeat.
func checkSeq(t testing.TB, recs []record) {
	t.Helper()
	want := int64(1)
	for i, r := range recs {
		want += int64(r.views) // the host.view records readAudit left out
		if r.Seq != want {
			t.Errorf("record %d has seq %d, want %d (seq must run 1, 2, 3 ... without gaps):\n%s", i+1, r.Seq, want, dumpRecords(recs))
			return
		}
		want++
	}
}

// checkTime asserts the time field is RFC3339Nano in UTC and recent.
func checkTime(t testing.TB, r record) {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		t.Errorf("seq %d: time %q does not parse as RFC3339Nano: %v", r.Seq, r.Time, err)
		return
	}
	if !strings.HasSuffix(r.Time, "Z") {
		t.Errorf("seq %d: time %q is not UTC", r.Seq, r.Time)
	}
	if d := time.Since(ts); d < -time.Minute || d > time.Hour {
		t.Errorf("seq %d: time %s is %s away from now", r.Seq, r.Time, d)
	}
}

// filter returns the records for which keep is true.
func filter(recs []record, keep func(record) bool) []record {
	var out []record
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func byEvent(event, outcome string) func(record) bool {
	return func(r record) bool { return r.Event == event && r.Outcome == outcome }
}

func byContainer(name string) func(record) bool {
	return func(r record) bool { return r.Container != nil && r.Container.Name == name }
}

func last(t testing.TB, recs []record) record {
	t.Helper()
	if len(recs) == 0 {
		t.Fatalf("audit log is empty")
	}
	return recs[len(recs)-1]
}

func hasInterface(ifs []hostInterface, name string) bool {
	for _, i := range ifs {
		if i.Name == name {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// checkRun asserts the records of one `docker run --rm` on a network:
// endpoint.create, endpoint.join, endpoint.leave, endpoint.delete, in that
// order, all ok, one endpoint, the network's ID, the network's tag, and the
// join's adopted flag as given.
func checkRun(t testing.TB, recs []record, networkID, tag string, adopted bool) {
	t.Helper()
	want := []string{"endpoint.create", "endpoint.join", "endpoint.leave", "endpoint.delete"}
	if len(recs) != len(want) {
		t.Fatalf("a docker run --rm wrote %d records, want %d (%v):\n%s", len(recs), len(want), want, dumpRecords(recs))
	}
	for i, r := range recs {
		if r.Event != want[i] || r.Outcome != "ok" {
			t.Errorf("record %d: event %q outcome %q, want %q ok", i+1, r.Event, r.Outcome, want[i])
		}
		if r.NetworkID != networkID {
			t.Errorf("%s: network_id %q, want %q", r.Event, r.NetworkID, networkID)
		}
		if r.EndpointID == "" || r.EndpointID != recs[0].EndpointID {
			t.Errorf("%s: endpoint_id %q, want %q (the same on all four records)", r.Event, r.EndpointID, recs[0].EndpointID)
		}
		if r.Tag != tag {
			t.Errorf("%s: tag %q, want %q", r.Event, r.Tag, tag)
		}
		checkTime(t, r)
	}
	join := recs[1]
	if join.SandboxKey == "" || join.Sandbox == "" {
		t.Errorf("endpoint.join has no sandbox_key, or no sandbox saying what it named:\n%s", join.line)
	}
	if !hasInterface(join.HostInterfaces, "lo") {
		t.Errorf("endpoint.join host_interfaces lack lo:\n%s", join.line)
	}
	if join.Adopted != adopted {
		t.Errorf("endpoint.join adopted=%v, want %v:\n%s", join.Adopted, adopted, join.line)
	}
}

// verifyLog runs `hostpass audit verify` on the log and returns its output;
// it fails the test unless the log verifies.
func verifyLog(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(hostpassBin(t), append([]string{"audit", "verify"}, args...)...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok: ") {
		t.Fatalf("hostpass audit verify %v: %v\n%s", args, err, out)
	}
	return string(out)
}

package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// audit show --service NAME|ID lists what a user asks for: the service's
// tasks' records and the records of their endpoints, by the name or the ID
// prefix; not another service's, nor a plain container's of the same name.
func TestAuditShowByService(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := audit.Open(path, nil)
	web := &audit.SwarmTask{ServiceName: "web", ServiceID: "x7rbl4pkq8pxcv2d3hqm1fxn0", TaskID: "kf3ee6dpzymq5rr6mfj5ol0cz", TaskName: "web.1.kf3ee6dpzymq5rr6mfj5ol0cz", Slot: 1, NodeID: "u4s2mxcm7qyv0z8w6b9l1e2a3"}
	agent := &audit.SwarmTask{ServiceName: "agent", ServiceID: "a9zzq", TaskID: "t2", NodeID: "u4s2mxcm7qyv0z8w6b9l1e2a3"}
	for _, r := range []audit.Record{
		{Event: audit.EndpointJoin, Driver: "hostpass", NetworkID: "net1", EndpointID: "epA"},
		{Event: audit.EndpointAttribute, NetworkID: "net1", EndpointID: "epA", Container: &audit.Container{ID: "c1", Name: web.TaskName}, Swarm: web},
		{Event: audit.EndpointAttribute, NetworkID: "net1", EndpointID: "epB", Container: &audit.Container{ID: "c2", Name: "web"}},
		{Event: audit.HostJoin, Container: &audit.Container{ID: "c3", Name: "agent.u4s2mxcm7qyv0z8w6b9l1e2a3.t2"}, Swarm: agent},
		{Event: audit.EndpointLeave, Driver: "hostpass", NetworkID: "net1", EndpointID: "epA"},
	} {
		r.Time, r.Outcome, r.Host = time.Now().UTC(), audit.OK, "node1"
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	for _, tc := range []struct {
		service string
		want    []string // each line's event and seq
	}{
		{"web", []string{"1 endpoint.join", "2 endpoint.attribute", "5 endpoint.leave"}},
		{"x7rbl4", []string{"1 endpoint.join", "2 endpoint.attribute", "5 endpoint.leave"}},
		{"agent", []string{"4 host.join"}},
		{"nobody", nil},
	} {
		var out, errOut bytes.Buffer
		if code := run([]string{"audit", "show", "--no-progress", "--service", tc.service, path}, &out, &errOut); code != 0 {
			t.Fatalf("--service %s: exit %d: %s", tc.service, code, errOut.String())
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] { // after the header
			f := strings.Fields(line)
			got = append(got, f[1]+" "+f[2])
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("--service %s: rows %q, want %q\n%s", tc.service, got, tc.want, out.String())
		}
	}
}

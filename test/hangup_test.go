//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestHangUpsLeaveNoRecords is the hostile reviewer's run: 3000 clients
// each send a Join's headers and one byte of its body, then hang up. Before,
// each became a refused endpoint.join record ("malformed ... unexpected
// EOF") and the daemon grew from 12 MB to 109 MB; now none is audited, the
// connections are served at most 256 at a time, and a real call still works.
func TestHangUpsLeaveNoRecords(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t, t.TempDir(), "--watch=false")
	const netID = "4a46a0000000000000000000000000000000000000000000000000000000beef"
	c := d.client()
	if code, err := d.post(c, "CreateNetwork", `{"NetworkID":"`+netID+`"}`); err != nil || code != 200 {
		t.Fatalf("CreateNetwork: %d %v", code, err)
	}
	before := rss(t, d.pid())
	var wg sync.WaitGroup
	for range 3000 {
		wg.Go(func() {
			conn, err := net.Dial("unix", d.sock)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			io.WriteString(conn, "POST /NetworkDriver.Join HTTP/1.1\r\nHost: hostpass\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
			conn.Close()
		})
	}
	wg.Wait()
	// Accepted after every hang-up (the backlog is first in, first out).
	body := fmt.Sprintf(`{"NetworkID":%q,"EndpointID":"after-hangups"}`, netID)
	if code, err := d.post(c, "Join", body); err != nil || code != 200 {
		t.Fatalf("Join after 3000 hang-ups: %d %v", code, err)
	}
	t.Logf("daemon RSS: %d kB before the hang-ups, %d kB after", before, rss(t, d.pid()))
	recs := readAudit(t, d.audit)
	if refused := filter(recs, func(r record) bool { return r.Outcome != "ok" }); len(refused) != 0 {
		t.Errorf("%d refused records, first: %s; want none: a client that hangs up before its body arrives is not audited", len(refused), refused[0].line)
	}
	if joins := filter(recs, byEvent("endpoint.join", "ok")); len(joins) != 1 || joins[0].EndpointID != "after-hangups" {
		t.Errorf("joins %s; want the one real Join", dumpRecords(joins))
	}
}

// rss is a process's resident set size in kB.
func rss(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb int
		if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &kb); err == nil {
			return kb
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

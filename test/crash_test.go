//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCrashWhileJoining kills the daemon with SIGKILL while 16 clients join,
// restarts it on the same log, and checks that the log verifies and that
// every join that got "ok" has its record.
func TestCrashWhileJoining(t *testing.T) {
	requirePrereqs(t)
	dir := t.TempDir()
	d := startDaemon(t, dir)
	if code, err := d.post(d.client(), "CreateNetwork", `{"NetworkID":"c7a5000000000000000000000000000000000000000000000000000000000000"}`); err != nil || code != 200 {
		t.Fatalf("CreateNetwork: %d %v", code, err)
	}

	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			client := d.client()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ep := fmt.Sprintf("ep-%02d-%06d", c, i)
				code, err := d.post(client, "Join", `{"NetworkID":"c7a5000000000000000000000000000000000000000000000000000000000000","EndpointID":"`+ep+`","SandboxKey":"/x"}`)
				if err != nil {
					return // the daemon is gone
				}
				if code == 200 {
					mu.Lock()
					acked = append(acked, ep)
					mu.Unlock()
				}
			}
		}(c)
	}
	time.Sleep(1500 * time.Millisecond)
	d.kill9(t)
	close(stop)
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d joins acknowledged before the kill; the test needs load", len(acked))
	}

	// Restart on the same log: the chain goes on, and one more join lands.
	os.Remove(d.sock) // what a killed daemon leaves behind is replaced anyway
	d.start(t)
	if code, err := d.post(d.client(), "Join", `{"NetworkID":"c7a5000000000000000000000000000000000000000000000000000000000000","EndpointID":"after-restart"}`); err != nil || code != 200 {
		t.Fatalf("Join after restart: %d %v", code, err)
	}
	d.terminate()

	out := verifyLog(t, filepath.Dir(d.audit))
	// The restart says the stop was not clean, and where the log ended:
	// its last whole record (a torn one is set aside just before).
	marks := readMarks(t, d.audit)
	for i, m := range marks {
		if m.Event != "audit.restart" {
			continue
		}
		end := marks[i-1]
		if end.Event == "audit.torn_tail" {
			end = marks[i-2]
		}
		if m.CleanStop == nil || *m.CleanStop || m.LogEnd == nil || m.LogEnd.Seq != end.Seq || m.LogEnd.Hash != end.Hash || m.LogEnd.Event != end.Event {
			t.Errorf("audit.restart after SIGKILL: clean_stop %v, log_end %+v; want false, seq %d %s %s", m.CleanStop, m.LogEnd, end.Seq, end.Event, end.Hash)
		}
	}
	recs := readAudit(t, d.audit)
	joined := map[string]bool{}
	for _, r := range filter(recs, byEvent("endpoint.join", "ok")) {
		joined[r.EndpointID] = true
	}
	for _, ep := range acked {
		if !joined[ep] {
			t.Errorf("join of %s got ok, but the log has no record of it", ep)
		}
	}
	if !joined["after-restart"] {
		t.Errorf("the join after the restart is not in the log")
	}
	t.Logf("%d joins acknowledged before SIGKILL, all on record; %s", len(acked), out)
}

// TestTornTailIsSetAside appends half a record, as a crash in the middle of a
// write would leave, and restarts the daemon: the partial line is moved to a
// side file, an audit.torn_tail record says so, and the log verifies.
func TestTornTailIsSetAside(t *testing.T) {
	requirePrereqs(t)
	dir := t.TempDir()
	d := startDaemon(t, dir)
	d.post(d.client(), "CreateNetwork", `{"NetworkID":"7047000000000000000000000000000000000000000000000000000000000000"}`)
	d.terminate()
	torn := []byte(`{"time":"2026-11-28T00:00:00Z","seq":2,"event":"endpoint.jo`)
	f, _ := os.OpenFile(d.audit, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(torn)
	f.Close()

	out, err := exec.Command(hostpassBin(t), "audit", "verify", d.audit).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "truncated: the last line is incomplete") {
		t.Fatalf("verify of a torn log: %v\n%s\nwant exit 1 naming the truncation", err, out)
	}

	d.start(t)
	if code, err := d.post(d.client(), "Join", `{"NetworkID":"7047000000000000000000000000000000000000000000000000000000000000","EndpointID":"e1"}`); err != nil || code != 200 {
		t.Fatalf("Join after restart: %d %v", code, err)
	}
	d.terminate()

	recs := readAudit(t, d.audit)
	if len(recs) != 3 || recs[1].Event != "audit.torn_tail" || recs[2].Event != "endpoint.join" {
		t.Fatalf("want network.create, audit.torn_tail, endpoint.join:\n%s", dumpRecords(recs))
	}
	// The runs' marks: each clean stop ends with audit.stop; the restart
	// sets the torn bytes aside first, then says where the log ended (the
	// first run's audit.stop: a clean stop).
	var all []string
	for _, r := range readAuditAll(t, d.audit) {
		all = append(all, r.Event)
	}
	if got := strings.Join(all, " "); got != "network.create audit.stop audit.torn_tail audit.restart host.view endpoint.join audit.stop" {
		t.Errorf("records %s; want network.create audit.stop audit.torn_tail audit.restart host.view endpoint.join audit.stop", got)
	}
	saved, _ := filepath.Glob(d.audit + ".torn-*")
	if len(saved) != 1 {
		t.Fatalf("want one side file with the torn bytes, got %v", saved)
	}
	if b, _ := os.ReadFile(saved[0]); !bytes.Equal(b, torn) {
		t.Errorf("side file holds %q, want the torn bytes", b)
	}
	if out := verifyLog(t, d.audit); !strings.Contains(out, "1 torn tail(s) set aside") {
		t.Errorf("verify summary does not mention the torn tail: %s", out)
	}
}

// TestSighupRotatesAndChainContinues rotates the log with SIGHUP between two
// calls: two files, one chain.
func TestSighupRotatesAndChainContinues(t *testing.T) {
	requirePrereqs(t)
	dir := t.TempDir()
	d := startDaemon(t, dir)
	c := d.client()
	d.post(c, "CreateNetwork", `{"NetworkID":"4b9e000000000000000000000000000000000000000000000000000000000000"}`)
	d.signal(t, syscall.SIGHUP)
	waitFiles := func() []string {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if m, _ := filepath.Glob(d.audit + ".*"); len(m) == 1 {
				return m
			}
		}
		t.Fatalf("no rotated file after SIGHUP")
		return nil
	}
	rotated := waitFiles()
	if filepath.Base(rotated[0]) != "audit.jsonl.00000000000000000001" {
		t.Errorf("rotated file %s, want audit.jsonl.00000000000000000001", rotated[0])
	}
	d.post(c, "Join", `{"NetworkID":"4b9e000000000000000000000000000000000000000000000000000000000000","EndpointID":"e1"}`)
	d.terminate()
	// network.create, then in the new file the join and the host.view it
	// names, and the clean stop's audit.stop.
	if out := verifyLog(t, filepath.Dir(d.audit)); !strings.Contains(out, "ok: 4 records in 2 file(s)") {
		t.Errorf("verify after SIGHUP: %s", out)
	}
}

//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSyslogSink: records reach a syslog collector as RFC 5424 messages, and
// a collector that is down delays and fails nothing.
func TestSyslogSink(t *testing.T) {
	requirePrereqs(t)
	collector, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer collector.Close()
	d := startDaemon(t, t.TempDir(), "--syslog", "udp://"+collector.LocalAddr().String())
	if code, err := d.post(d.client(), "CreateNetwork", `{"NetworkID":"5e55000000000000000000000000000000000000000000000000000000000000"}`); err != nil || code != 200 {
		t.Fatalf("CreateNetwork: %d %v", code, err)
	}
	collector.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, _, err := collector.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no syslog message: %v", err)
	}
	msg := string(buf[:n])
	rec := readChained(t, d.audit)[0]
	sd := fmt.Sprintf(`[%s seq="1" prev="%s" hash="%s"]`, sdID, rec.Prev, rec.Hash)
	if !strings.HasPrefix(msg, "<86>1 ") || !strings.Contains(msg, " hostpass ") || !strings.Contains(msg, " network.create "+sd+" ") ||
		!strings.HasSuffix(msg, " "+rec.line) || rec.Seq != 1 || rec.Prev != strings.Repeat("0", 64) {
		t.Errorf("syslog message %q\nwant <86>1 ... hostpass PID network.create %s <the record's line>", msg, sd)
	}

	// A collector that is down: tcp to a port nothing listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := l.Addr().String()
	l.Close()
	d2 := startDaemon(t, t.TempDir(), "--syslog", "tcp://"+down)
	c := d2.client()
	for i := 0; i < 50; i++ {
		if code, err := d2.post(c, "Join", fmt.Sprintf(`{"NetworkID":"5157e7000000000000000000000000000000000000000000000000000000cafe","EndpointID":"e%d"}`, i)); err != nil || code != 200 {
			t.Fatalf("join %d with syslog down: %d %v", i, code, err)
		}
	}
	if n := len(readAudit(t, d2.audit)); n != 50 {
		t.Errorf("%d records with syslog down, want 50", n)
	}
}

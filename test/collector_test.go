//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	collectorReady = 15 * time.Second
	collectorStop  = 15 * time.Second
	// rsyslogMax is rsyslog's default maxMessageSize, stated in the
	// collector's configuration: the cut issue 10 is about.
	rsyslogMax = 8 << 10
)

// collectorConf is the collector's rsyslog configuration (docs/offhost.md):
// TCP (RFC 6587 octet counting) and UDP on the namespace's loopback, every
// message written as received to received.log, and MSG alone of the
// audit.checkpoint messages to checkpoints.jsonl; and the same two per
// sending host, in hosts/HOSTNAME/, where a fleet's collector keeps each
// host's (swarm_test.go; secpath-replace: a sender's HOSTNAME names no
// other folder). It loads no imuxsock and no imklog: /dev/log and
// the kernel log stay the machine's.
const collectorConf = `# hostpass e2e collector: Debian's rsyslog, run by the test in the engine's
# network namespace (rsyslogd -n -f collector.conf -i collector.pid), stopped by pid.
global(
  workDirectory="{{dir}}"
  maxMessageSize="8k"  # rsyslog's default, stated: the test proves SD survives it
)
module(load="imtcp")
module(load="imudp")
# discardTruncatedMsg: over TCP, rsyslog otherwise turns the cut-off rest of an
# oversize frame into a message of its own.
input(type="imtcp" address="{{addr}}" port="{{port}}" discardTruncatedMsg="on" ruleset="hostpass")
input(type="imudp" address="{{addr}}" port="{{port}}" ruleset="hostpass")

template(name="hpRaw" type="string" string="%rawmsg%\n")
template(name="hpMsg" type="string" string="%msg%\n")
template(name="hpHostRaw" type="string" string="{{dir}}/hosts/%hostname:::secpath-replace%/received.log")
template(name="hpHostCheckpoints" type="string" string="{{dir}}/hosts/%hostname:::secpath-replace%/checkpoints.jsonl")

ruleset(name="hostpass") {
  action(type="omfile" file="{{dir}}/received.log" template="hpRaw")
  action(type="omfile" dynaFile="hpHostRaw" template="hpRaw")
  if $msgid == "audit.checkpoint" then {
    action(type="omfile" file="{{dir}}/checkpoints.jsonl" template="hpMsg")
    action(type="omfile" dynaFile="hpHostCheckpoints" template="hpMsg")
  }
}
`

// collector is Debian's rsyslogd listening on 127.0.0.1:port (or addr),
// TCP and UDP, in an engine's network namespace: what a user's syslog
// collector is.
type collector struct {
	dir         string
	addr        string // the IPv4 address it listens on
	port        int
	received    string // every message as received, one a line
	checkpoints string // MSG of the audit.checkpoint messages, one a line

	cmd  *exec.Cmd
	done chan struct{}
}

// newCollector writes the configuration into a folder of its own under the
// engine's DIR, has rsyslogd check it (-N1, so that a bad one fails with
// rsyslog's own message), starts rsyslogd in the foreground and waits until
// both inputs listen. Cleanup stops it by pid.
func newCollector(t testing.TB, e *engine, port int) *collector {
	t.Helper()
	return newCollectorOn(t, e, "127.0.0.1", port)
}

// newCollectorOn is newCollector listening on addr, an IPv4 address of the
// engine's namespace.
func newCollectorOn(t testing.TB, e *engine, addr string, port int) *collector {
	t.Helper()
	if _, err := exec.LookPath("rsyslogd"); err != nil {
		t.Fatalf("rsyslogd not found on PATH: install rsyslog (scripts/deps.sh, .ci/run)")
	}
	c := &collector{dir: e.mkdir(t, fmt.Sprintf("rsyslog-%d", port)), addr: addr, port: port}
	c.received = filepath.Join(c.dir, "received.log")
	c.checkpoints = filepath.Join(c.dir, "checkpoints.jsonl")
	conf := filepath.Join(c.dir, "collector.conf")
	text := strings.NewReplacer("{{dir}}", c.dir, "{{addr}}", addr, "{{port}}", strconv.Itoa(port)).Replace(collectorConf)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("rsyslogd", "-N1", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 -f %s: %v\n%s", conf, err, out)
	}
	logPath := filepath.Join(c.dir, "rsyslogd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = e.nsenter("rsyslogd", "-n", "-f", conf, "-i", filepath.Join(c.dir, "collector.pid"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	c.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(c.cmd, c.done)
	t.Cleanup(func() {
		c.stop(t)
		if t.Failed() {
			t.Logf("rsyslogd output (tail):\n%s", tail(logPath, 20))
		}
	})

	deadline := time.Now().Add(collectorReady)
	for !listeningOn(c.cmd.Process.Pid, "tcp", addr, port) || !listeningOn(c.cmd.Process.Pid, "udp", addr, port) {
		select {
		case <-c.done:
			c.cmd = nil
			t.Fatalf("rsyslogd exited during start-up; output:\n%s", tail(logPath, 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd not listening on %s:%d (tcp and udp) after %s; output:\n%s", addr, port, collectorReady, tail(logPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// listening reports whether a socket of process pid's network namespace is
// bound to 127.0.0.1:port: a listening TCP socket, or any UDP one.
// /proc/PID/net shows the namespace of that process, not the test's.
func listening(pid int, proto string, port int) bool {
	return listeningOn(pid, proto, "127.0.0.1", port)
}

// listeningOn is listening on addr, an IPv4 address.
func listeningOn(pid int, proto, addr string, port int) bool {
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
	if err != nil {
		return false
	}
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], port) // little-endian address, big-endian port
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == local && (proto == "udp" || f[3] == "0A") { // 0A: TCP_LISTEN
			return true
		}
	}
	return false
}

// hostReceived is the file of every message the collector received from
// host (its HOSTNAME), as received.
func (c *collector) hostReceived(host string) string {
	return filepath.Join(c.dir, "hosts", host, "received.log")
}

// hostCheckpoints is the file of the MSG of host's audit.checkpoint
// messages, for hostpass audit verify --checkpoint.
func (c *collector) hostCheckpoints(host string) string {
	return filepath.Join(c.dir, "hosts", host, "checkpoints.jsonl")
}

// stop sends rsyslogd SIGTERM and waits (it flushes its files on the way
// out); SIGKILL past collectorStop. A no-op when it is not running.
func (c *collector) stop(t testing.TB) {
	t.Helper()
	if c.cmd == nil {
		return
	}
	stopProcess(t, "rsyslogd", c.cmd, c.done, collectorStop)
	c.cmd = nil
}

// sdID is the SD-ID of hostpass's STRUCTURED-DATA: the suite's own copy of
// sink.SDID, so that a change to what reaches collectors fails here.
const sdID = "hostpass@32473"

// sdRE is a message as sink/ writes it, up to MSG: MSGID, and seq, epoch
// (signed and sealed logs), prev and hash in hostpass's SD-ELEMENT.
var sdRE = regexp.MustCompile(`^<\d+>1 \S+ \S+ hostpass \d+ (\S+) \[` + sdID + ` seq="(\d+)"(?: epoch="(\d+)")? prev="([0-9a-f]{64})" hash="([0-9a-f]{64})"\] `)

// received is one message as the collector wrote it.
type received struct {
	msgid      string
	seq        int64
	epoch      string // "" when the message has none
	prev, hash string
	body       string // MSG: the record's line, or its start when cut
	size       int    // the message's length as received
	line       int    // in received.log, from 1
}

// receivedMessages parses received.log; a line without hostpass's SD
// fails the test.
func (c *collector) receivedMessages(t testing.TB) []received {
	t.Helper()
	b, err := os.ReadFile(c.received)
	if err != nil {
		t.Fatalf("the collector wrote nothing: %v", err)
	}
	var out []received
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		m := sdRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s line %d: no [%s seq prev hash] STRUCTURED-DATA:\n%.600s", c.received, i+1, sdID, line)
		}
		seq, _ := strconv.ParseInt(m[2], 10, 64)
		out = append(out, received{msgid: m[1], seq: seq, epoch: m[3], prev: m[4], hash: m[5], body: line[len(m[0]):], size: len(line), line: i + 1})
	}
	return out
}

// waitSeq waits until the collector has written the message of seq.
func (c *collector) waitSeq(t testing.TB, seq int64) {
	t.Helper()
	want := fmt.Sprintf(`[%s seq="%d" `, sdID, seq)
	deadline := time.Now().Add(recordsReady)
	for {
		if b, err := os.ReadFile(c.received); err == nil && strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector did not receive seq %d within %s; received.log (tail):\n%.4000s", seq, recordsReady, tail(c.received, 5))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// bigOption is a network option hostpass refuses, 10,000 bytes long: the
// refused network.create record carries it, larger than rsyslog's 8 KiB.
var bigOption = "pad=" + strings.Repeat("x", 10000)

// refuseBigOption has the engine create a network with bigOption, which
// hostpass refuses (and records).
func refuseBigOption(t testing.TB, e *engine, p *daemon) {
	t.Helper()
	out, err := e.dockerTry("network", "create", "-d", p.name, "-o", bigOption, "n-big")
	if err == nil || !strings.Contains(out, `unknown network option "pad"`) {
		t.Fatalf("docker network create -o %.10s…: %v\n%.300s\nwant hostpass's refusal", bigOption, err, out)
	}
}

// TestSyslogCollectorKeepsTheChain (issue 10, item 6): a real rsyslog, over
// TCP and over UDP, receives every record of a real dockerd's calls with
// the record's seq, prev and hash in STRUCTURED-DATA, and a record larger
// than its 8 KiB limit arrives cut, its SD whole.
func TestSyslogCollectorKeepsTheChain(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	for i, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			c := newCollector(t, e, 10514+i)
			p := newLegacyPlugin(t, e)
			p.extra = []string{"--syslog", fmt.Sprintf("%s://127.0.0.1:%d", transport, c.port)}
			p.start(t)
			network := "n-syslog-" + transport
			refuseBigOption(t, e, p)
			e.docker(t, "network", "create", "-d", p.name, network)
			e.docker(t, "run", "--rm", "--network", network, image, "true")
			e.docker(t, "run", "--rm", "--network", network, image, "true")
			e.docker(t, "network", "rm", network)
			p.stop(t)

			recs := readChained(t, p.audit)
			c.waitSeq(t, recs[len(recs)-1].Seq)
			c.stop(t) // flushes its files
			checkCollected(t, c, recs)
		})
	}
}

// chained is the chain of one audit log line: the suite's own reading, as
// record's (record_test.go).
type chained struct {
	Seq   int64   `json:"seq"`
	Event string  `json:"event"`
	Epoch *uint64 `json:"epoch"`
	Prev  string  `json:"prev"`
	Hash  string  `json:"hash"`
	line  string
}

// readChained reads every line of an audit log (host.view records
// included) as the chain sees it.
func readChained(t testing.TB, path string) []chained {
	t.Helper()
	var out []chained
	for _, line := range readLines(t, path) {
		var r chained
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit log %s: %v\n%s", path, err, line)
		}
		r.line = line
		out = append(out, r)
	}
	if len(out) == 0 {
		t.Fatalf("audit log %s is empty", path)
	}
	return out
}

// readLines is a file's lines, without their newlines.
func readLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// checkCollected asserts that the collector received each record of the
// host's log exactly once, with the record's event as MSGID and its seq,
// epoch, prev and hash in STRUCTURED-DATA; a record that fits whole, and
// one larger than rsyslog's 8 KiB cut there: its MSG lost the tail (the
// hash with it), its SD is whole. At least one record must be that large.
func checkCollected(t testing.TB, c *collector, recs []chained) {
	t.Helper()
	msgs := c.receivedMessages(t)
	bySeq := map[int64]received{}
	for _, m := range msgs {
		if prior, dup := bySeq[m.seq]; dup {
			t.Errorf("%s: seq %d received twice (lines %d and %d)", c.received, m.seq, prior.line, m.line)
		}
		bySeq[m.seq] = m
	}
	if len(msgs) != len(recs) {
		t.Errorf("the collector received %d messages, the host's log has %d records", len(msgs), len(recs))
	}
	cut := 0
	for _, r := range recs {
		m, ok := bySeq[r.Seq]
		if !ok {
			t.Errorf("seq %d (%s) never reached the collector", r.Seq, r.Event)
			continue
		}
		epoch := ""
		if r.Epoch != nil {
			epoch = fmt.Sprint(*r.Epoch)
		}
		if m.msgid != r.Event || m.prev != r.Prev || m.hash != r.Hash || m.epoch != epoch {
			t.Errorf("seq %d: the collector has MSGID %s epoch %q prev %s hash %s, the log has %s epoch %q prev %s hash %s",
				r.Seq, m.msgid, m.epoch, m.prev, m.hash, r.Event, epoch, r.Prev, r.Hash)
		}
		if len(r.line) < rsyslogMax {
			if m.body != r.line {
				t.Errorf("seq %d: MSG is not the record's line:\n got %.300s\nwant %.300s", r.Seq, m.body, r.line)
			}
			continue
		}
		cut++
		if m.size != rsyslogMax || !strings.HasPrefix(r.line, m.body) || strings.Contains(m.body, r.Hash) {
			t.Errorf("seq %d (%d bytes): received %d bytes, want the message cut at %d, MSG the line's start without its hash", r.Seq, len(r.line), m.size, rsyslogMax)
		}
	}
	if cut == 0 {
		t.Errorf("no record over %d bytes: the test must make one (network option %.10s…)", rsyslogMax, bigOption)
	}
}

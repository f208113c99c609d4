package sink

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// message is one RFC 5424 message split into its fields.
type message struct {
	pri, version, timestamp, hostname, app, procid, msgid, sd, body string
}

func parse(t *testing.T, raw string) message {
	t.Helper()
	f := strings.SplitN(raw, " ", 7)
	if len(f) != 7 || !strings.HasPrefix(f[0], "<") {
		t.Fatalf("not an RFC 5424 message: %q", raw)
	}
	pri, version, ok := strings.Cut(f[0][1:], ">")
	if !ok {
		t.Fatalf("no PRI in %q", raw)
	}
	sd, body, ok := cutSD(f[6])
	if !ok {
		t.Fatalf("no STRUCTURED-DATA in %q", raw)
	}
	return message{pri, version, f[1], f[2], f[3], f[4], f[5], sd, body}
}

// cutSD splits "STRUCTURED-DATA SP MSG" after the STRUCTURED-DATA: "-", or
// SD-ELEMENTs, each "[...]", where a quoted PARAM-VALUE may hold an escaped
// '"', '\\' or ']' (RFC 5424 §6.3.3).
func cutSD(s string) (sd, msg string, ok bool) {
	if s == "-" || strings.HasPrefix(s, "- ") {
		return "-", strings.TrimPrefix(s[1:], " "), true
	}
	i := 0
	for i < len(s) && s[i] == '[' {
		quoted, closed := false, false
		for i++; i < len(s) && !closed; i++ {
			switch {
			case quoted && s[i] == '\\':
				i++
			case s[i] == '"':
				quoted = !quoted
			case !quoted && s[i] == ']':
				closed = true
			}
		}
		if !closed {
			return "", "", false
		}
	}
	if i == 0 {
		return "", "", false
	}
	if i == len(s) {
		return s, "", true
	}
	if s[i] != ' ' {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// A record's chain as a signed log writes it, and its STRUCTURED-DATA.
var (
	testEpoch = uint64(3)
	testChain = Chain{
		Seq:   4,
		Epoch: &testEpoch,
		Prev:  "2b46c9f8940baa9bf6776a1d071bb709ae5fd7436bda54f2385cc556e66a80d7",
		Hash:  "5d81b598858c5ddec07729e0664996b7bbedc8304fc1c228e3551fda3be75291",
	}
	testSD = `[hostpass@32473 seq="4" epoch="3" prev="2b46c9f8940baa9bf6776a1d071bb709ae5fd7436bda54f2385cc556e66a80d7" hash="5d81b598858c5ddec07729e0664996b7bbedc8304fc1c228e3551fda3be75291"]`
)

// newSink returns a sink whose warnings land in the returned hook.
func newSink(t *testing.T, addr string) (*Syslog, *logtest.Hook) {
	t.Helper()
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	obs := &lostCounter{}
	s, err := NewSyslogObserved(addr, "node-1", logrus.NewEntry(logger), obs)
	if err != nil {
		t.Fatal(err)
	}
	// Every test's sink: the observer heard of exactly the lines Dropped
	// counts, whatever way they were lost.
	t.Cleanup(func() {
		s.Close(time.Second)
		if got, want := obs.n.Load(), s.Dropped(); got != want {
			t.Errorf("Observer heard of %d lost lines; Dropped() = %d", got, want)
		}
	})
	return s, hook
}

// lostCounter is an Observer that adds up the lines lost.
type lostCounter struct{ n atomic.Uint64 }

func (c *lostCounter) SyslogDropped(n int) { c.n.Add(uint64(n)) }

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readDatagram returns the next datagram on c, failing after a generous wait.
func readDatagram(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// readFrame returns the next octet-counted (RFC 6587) message from r.
func readFrame(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	lenText, err := r.ReadString(' ')
	if err != nil {
		t.Fatalf("reading frame length: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(lenText, " "))
	if err != nil || n <= 0 {
		t.Fatalf("bad frame length %q", lenText)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		t.Fatalf("reading %d-byte frame: %v", n, err)
	}
	return string(msg)
}

// accept returns a reader on the first connection to ln, failing after a
// generous wait (the sender may be in its reconnect backoff).
func accept(t *testing.T, ln *net.TCPListener) (*bufio.Reader, net.Conn) {
	t.Helper()
	ln.SetDeadline(time.Now().Add(20 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return bufio.NewReader(c), c
}

func listenTCP(t *testing.T, addr string) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func TestFormatOverUDP(t *testing.T) {
	c := listenUDP(t)
	s, _ := newSink(t, "udp://"+c.LocalAddr().String())

	line := `{"seq":7,"event":"endpoint.join","outcome":"ok","note":"héllo \"quoted\" – spaces"}`
	for _, tc := range []struct {
		event   string
		refused bool
		pri     string
		msgid   string
	}{
		{"endpoint.join", false, "86", "endpoint.join"},
		{"endpoint.join", true, "84", "endpoint.join"},
		{"", false, "86", "-"},
		{"bad event\tname-é", false, "86", "bad_event_name-_"},
		{strings.Repeat("x", 40), false, "86", strings.Repeat("x", 32)},
	} {
		s.Send(tc.event, tc.refused, testChain, []byte(line))
		raw := readDatagram(t, c)
		m := parse(t, raw)
		want := message{tc.pri, "1", m.timestamp, "node-1", "hostpass", strconv.Itoa(os.Getpid()), tc.msgid, testSD, line}
		if m != want {
			t.Errorf("event %q refused %v:\n got %+v\nwant %+v", tc.event, tc.refused, m, want)
		}
		ts, err := time.Parse(time.RFC3339Nano, m.timestamp)
		if err != nil || !strings.HasSuffix(m.timestamp, "Z") || len(m.timestamp) != len("2006-01-02T15:04:05.000000Z") {
			t.Errorf("timestamp %q: want RFC 3339, microseconds, UTC (%v)", m.timestamp, err)
		}
		if d := time.Since(ts); d < 0 || d > time.Minute {
			t.Errorf("timestamp %q is %v away from now", m.timestamp, d)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(m.body), &v); err != nil {
			t.Errorf("body is not the JSON line: %v", err)
		}
	}
}

func TestUnixgram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, _ := newSink(t, "unixgram://"+path)

	s.Send("network.create", false, testChain, []byte(`{"seq":1}`))
	m := parse(t, readDatagram(t, c))
	if m.pri != "86" || m.msgid != "network.create" || m.body != `{"seq":1}` {
		t.Errorf("got %+v", m)
	}
}

func TestTCPOctetCounting(t *testing.T) {
	ln := listenTCP(t, "127.0.0.1:0")
	s, _ := newSink(t, "tcp://"+ln.Addr().String())

	// Bodies with spaces and digits, which would confuse a reader that split
	// on anything but the length prefix.
	var want []string
	for i := range 50 {
		want = append(want, fmt.Sprintf(`{"seq":%d,"note":"%s"}`, i, strings.Repeat("a b 12 ", i)))
		s.Send("endpoint.leave", i%2 == 1, testChain, []byte(want[i]))
	}
	r, _ := accept(t, ln)
	for i, body := range want {
		m := parse(t, readFrame(t, r))
		pri := "86"
		if i%2 == 1 {
			pri = "84"
		}
		if m.body != body || m.pri != pri || m.msgid != "endpoint.leave" {
			t.Fatalf("frame %d: got %+v, want body %q pri %s", i, m, body, pri)
		}
	}
}

func TestUnixStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s, _ := newSink(t, "unix://"+path)

	s.Send("endpoint.join", true, testChain, []byte(`{"a":1}`))
	s.Send("endpoint.join", false, testChain, []byte(`{"a":2}`))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for _, body := range []string{`{"a":1}`, `{"a":2}`} {
		if m := parse(t, readFrame(t, r)); m.body != body {
			t.Errorf("got %+v, want body %s", m, body)
		}
	}
}

// A collector that is down must neither block Send nor lose the sink: lines
// beyond the queue are dropped and counted, with one warning, and once the
// collector comes up the sender reconnects on its own.
func TestDownCollectorNeverBlocksAndReconnects(t *testing.T) {
	ln := listenTCP(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	s, hook := newSink(t, "tcp://"+addr)
	const sends = 10000
	for i := range sends {
		s.Send("endpoint.join", false, testChain, fmt.Appendf(nil, `{"seq":%d}`, i))
	}
	// At most the queue plus the one line in the sender's hand can be kept.
	if d := s.Dropped(); d < sends-queueSize-1 {
		t.Fatalf("dropped %d of %d lines with the collector down, want at least %d", d, sends, sends-queueSize-1)
	}
	var warnings int
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["dropped"] != nil {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("got %d drop warnings for one burst, want 1 (rate-limited)", warnings)
	}

	ln = listenTCP(t, addr)
	r, _ := accept(t, ln)
	// The queue is full until the sender drains it, so offer the marker
	// again after each frame read until it is taken instead of dropped.
	const marker = `{"marker":true}`
	queued := false
	for {
		if !queued {
			before := s.Dropped()
			s.Send("endpoint.join", false, testChain, []byte(marker))
			queued = s.Dropped() == before
		}
		if m := parse(t, readFrame(t, r)); m.body == marker {
			break
		}
	}
}

func TestCloseSendsWhatIsQueued(t *testing.T) {
	ln := listenTCP(t, "127.0.0.1:0")
	s, _ := newSink(t, "tcp://"+ln.Addr().String())
	for i := range 100 {
		s.Send("network.delete", false, testChain, fmt.Appendf(nil, `{"seq":%d}`, i))
	}
	s.Close(10 * time.Second)
	s.Send("network.delete", false, testChain, []byte(`{"late":true}`)) // must not panic or block

	r, _ := accept(t, ln)
	for i := range 100 {
		if m := parse(t, readFrame(t, r)); m.body != fmt.Sprintf(`{"seq":%d}`, i) {
			t.Fatalf("frame %d: got %+v", i, m)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("after the queued lines: got %v, want EOF (connection closed)", err)
	}
	if d := s.Dropped(); d != 1 {
		t.Errorf("dropped %d, want 1 (the line sent after Close)", d)
	}
}

// Close gives up after its timeout when the collector is down, and counts
// what it could not send.
func TestCloseWithCollectorDown(t *testing.T) {
	ln := listenTCP(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()

	s, _ := newSink(t, "tcp://"+addr)
	for range 10 {
		s.Send("endpoint.join", false, testChain, []byte(`{}`))
	}
	s.Close(50 * time.Millisecond)
	if d := s.Dropped(); d != 10 {
		t.Errorf("dropped %d, want 10 (all lost at Close)", d)
	}
}

func TestBadAddresses(t *testing.T) {
	for _, addr := range []string{
		"",
		"/dev/log",
		"unixgram://",
		"unixgram://dev/log",
		"unix://",
		"udp://127.0.0.1",
		"udp://:514",
		"tcp://127.0.0.1:0",
		"tcp://127.0.0.1:syslog",
		"tcp://127.0.0.1:70000",
		"tcp://127.0.0.1:514/path",
		"http://127.0.0.1:514",
		"tls://127.0.0.1:6514",
	} {
		_, err := NewSyslog(addr, "h", nil)
		if err == nil {
			t.Errorf("%q: no error", addr)
			continue
		}
		want := fmt.Sprintf("syslog address %q: want unixgram:///dev/log, unix:///PATH, udp://HOST:PORT or tcp://HOST:PORT", addr)
		if err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", addr, err, want)
		}
	}
	for _, addr := range []string{"unixgram:///dev/log", "unix:///run/syslog.sock", "udp://127.0.0.1:514", "tcp://[::1]:6514", "tcp://localhost:601"} {
		s, err := NewSyslog(addr, "h", logrus.NewEntry(logrus.New()))
		if err != nil {
			t.Errorf("%q: %v", addr, err)
			continue
		}
		s.Close(0)
	}
}

// A collector that hangs up is redialled: lines sent afterwards arrive, cleanly
// framed, on a new connection.
func TestReconnectAfterCollectorHangsUp(t *testing.T) {
	ln := listenTCP(t, "127.0.0.1:0")
	s, _ := newSink(t, "tcp://"+ln.Addr().String())

	s.Send("endpoint.join", false, testChain, []byte(`{"first":true}`))
	r, c := accept(t, ln)
	if m := parse(t, readFrame(t, r)); m.body != `{"first":true}` {
		t.Fatalf("got %+v", m)
	}
	c.Close()

	// TCP reports the hang-up only on a later write, so keep sending until
	// the sender redials.
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				s.Send("endpoint.join", false, testChain, fmt.Appendf(nil, `{"again":%d}`, i))
			}
		}
	}()
	r, _ = accept(t, ln)
	close(stop)
	<-sent
	if m := parse(t, readFrame(t, r)); !strings.HasPrefix(m.body, `{"again":`) {
		t.Errorf("after redial got %+v", m)
	}
}

// A line the collector refuses every time (too large for a UDP datagram) is
// dropped after one retry instead of stalling the lines behind it.
func TestUnsendableLineIsDropped(t *testing.T) {
	c := listenUDP(t)
	s, _ := newSink(t, "udp://"+c.LocalAddr().String())

	s.Send("endpoint.join", false, testChain, []byte(`{"big":"`+strings.Repeat("x", 70000)+`"}`))
	s.Send("endpoint.join", false, testChain, []byte(`{"small":true}`))
	if m := parse(t, readDatagram(t, c)); m.body != `{"small":true}` {
		t.Errorf("got %+v", m)
	}
	if d := s.Dropped(); d != 1 {
		t.Errorf("dropped %d, want 1", d)
	}
}

// TestObserverHearsLinesACollectorThatIsDownLost: with nothing listening,
// every line is lost, in the queue's overflow or at Close, and the
// Observer hears of each one.
func TestObserverHearsLinesACollectorThatIsDownLost(t *testing.T) {
	ln := listenTCP(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // the collector is down
	obs := &lostCounter{}
	logger, _ := logtest.NewNullLogger()
	s, err := NewSyslogObserved("tcp://"+addr, "h", logrus.NewEntry(logger), obs)
	if err != nil {
		t.Fatal(err)
	}
	const sends = queueSize + 100
	for range sends {
		s.Send("endpoint.join", false, testChain, []byte(`{}`))
	}
	// The queue and the line in the sender's hand are kept until Close.
	if got := obs.n.Load(); got < sends-queueSize-1 {
		t.Errorf("Observer heard of %d lost lines before Close; want at least the %d beyond the queue", got, sends-queueSize-1)
	}
	s.Close(50 * time.Millisecond)
	if got := obs.n.Load(); got != sends {
		t.Errorf("Observer heard of %d lost lines after Close; want all %d", got, sends)
	}
}

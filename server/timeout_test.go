package server

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/driver"
)

func TestHTTPServerHasTimeouts(t *testing.T) {
	srv := HTTPServer(http.NotFoundHandler(), nil)
	if srv.ReadHeaderTimeout != HeaderTimeout || srv.ReadTimeout != BodyTimeout || srv.IdleTimeout != IdleTimeout {
		t.Errorf("timeouts: header %s, read %s, idle %s; want %s, %s, %s",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout, HeaderTimeout, BodyTimeout, IdleTimeout)
	}
	if BodyTimeout <= 0 || IdleTimeout <= 0 {
		t.Errorf("BodyTimeout %s, IdleTimeout %s: want both set", BodyTimeout, IdleTimeout)
	}
}

// serveShort serves the real handler with HTTPServer's settings, its
// timeouts shortened to 200ms so that the test need not wait the real ones.
func serveShort(t *testing.T) (addr, auditLog string) {
	t.Helper()
	dir := t.TempDir()
	auditLog = filepath.Join(dir, "audit.jsonl")
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	a := audit.Open(auditLog, nil)
	d, err := driver.New(driver.Config{Name: "hp", Hostname: "testhost", StateDir: filepath.Join(dir, "state"), Audit: a,
		HostInterfaces: func() []audit.Interface { return fakeHost }, Log: logrus.NewEntry(lg)})
	if err != nil {
		t.Fatal(err)
	}
	srv := HTTPServer(New(d, logrus.NewEntry(lg)), log.New(io.Discard, "", 0))
	srv.ReadTimeout, srv.IdleTimeout = 200*time.Millisecond, 200*time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go Serve(srv, l)
	t.Cleanup(func() { srv.Close(); a.Close() })
	return l.Addr().String(), auditLog
}

// records reads the audit log, which need not exist yet.
func records(t *testing.T, auditLog string) []audit.Entry {
	t.Helper()
	var recs []audit.Entry
	err := audit.Query([]string{auditLog}, audit.Filter{}, func(r *audit.Entry, _ []byte) error { recs = append(recs, *r); return nil })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return recs
}

// joinHeaders promise a 100-byte Join body; only its first byte follows.
const joinHeaders = "POST /NetworkDriver.Join HTTP/1.1\r\nHost: hostpass\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"

// A client that stalls before its body arrives is cut off, and leaves no
// record: before, every slow or dropped connection became a refused
// endpoint.join, so any client could flood the log.
func TestSlowBodyIsCutOffUnaudited(t *testing.T) {
	addr, auditLog := serveShort(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, joinHeaders)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a request whose body never arrives: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "NetworkDriver.Join: request body did not arrive in full") || !strings.Contains(string(body), "i/o timeout") {
		t.Errorf("answer %d %s; want 400 naming the timeout", resp.StatusCode, body)
	}
	if recs := records(t, auditLog); len(recs) != 0 {
		t.Errorf("records %+v; want none for a body that never arrived", recs)
	}
}

// A client that hangs up before its body arrives leaves no record; a body
// that arrived whole and does not decode is still audited as malformed.
func TestTruncatedBodyUnauditedMalformedBodyAudited(t *testing.T) {
	addr, auditLog := serveShort(t)
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, joinHeaders)
		// Hang up our side; reading the answer shows the server is done.
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("truncated body: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "unexpected EOF") {
			t.Errorf("truncated body: answer %d %s; want 400 naming the unexpected EOF", resp.StatusCode, body)
		}
		c.Close()
	}
	resp, err := http.Post("http://"+addr+"/NetworkDriver.Join", "application/json", strings.NewReader(`{"NetworkID":`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	recs := records(t, auditLog)
	if len(recs) != 1 || recs[0].Event != "endpoint.join" || recs[0].Outcome != audit.Refused ||
		!strings.HasPrefix(recs[0].Error, "malformed NetworkDriver.Join request: unexpected end of JSON input") {
		t.Errorf("records %+v; want one: the whole but malformed body, refused", recs)
	}
}

func TestIdleConnectionIsClosed(t *testing.T) {
	addr, _ := serveShort(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /NetworkDriver.GetCapabilities HTTP/1.1\r\nHost: hostpass\r\nContent-Length: 0\r\n\r\n")
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("idle kept-alive connection: read gave %v; want EOF, the server closing it", err)
	}
}

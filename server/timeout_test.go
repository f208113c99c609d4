package server

import (
	"bufio"
	"io"
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
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); a.Close() })
	return l.Addr().String(), auditLog
}

func TestSlowBodyIsCutOff(t *testing.T) {
	addr, auditLog := serveShort(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Headers promise 100 bytes; one arrives, the rest never do.
	io.WriteString(c, "POST /NetworkDriver.Join HTTP/1.1\r\nHost: hostpass\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a request whose body never arrives: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "i/o timeout") {
		t.Errorf("answer %d %s; want 400 naming the timeout", resp.StatusCode, body)
	}
	// The refusal is audited like any malformed request.
	var recs []audit.Entry
	audit.Query([]string{auditLog}, audit.Filter{}, func(r *audit.Entry, _ []byte) error { recs = append(recs, *r); return nil })
	if len(recs) != 1 || recs[0].Event != "endpoint.join" || recs[0].Outcome != audit.Refused {
		t.Errorf("records %+v; want one refused endpoint.join", recs)
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

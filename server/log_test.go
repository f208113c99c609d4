package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/driver"
)

// loggedPlugin is newPlugin's handler with its log at level, caught.
func loggedPlugin(t *testing.T, level logrus.Level) (*plugin, *logtest.Hook) {
	dir := t.TempDir()
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(level)
	hook := logtest.NewLocal(log)
	a := audit.Open(filepath.Join(dir, "audit.jsonl"), nil)
	d, err := driver.New(driver.Config{
		Name: "hp", Hostname: "testhost", StateDir: filepath.Join(dir, "state"), Audit: a,
		HostInterfaces: func() []audit.Interface { return fakeHost }, Log: logrus.NewEntry(log),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(d, logrus.NewEntry(log)))
	t.Cleanup(func() { srv.Close(); a.Close() })
	return &plugin{t: t, srv: srv, auditLog: filepath.Join(dir, "audit.jsonl"), stateDir: filepath.Join(dir, "state")}, hook
}

const logNet = "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

// At info, a call that succeeds leaves no line (its audit record is in the
// file); a refused one leaves one, naming the call, its IDs and the error.
func TestCallLogAtInfo(t *testing.T) {
	p, hook := loggedPlugin(t, logrus.InfoLevel)
	p.ok("NetworkDriver.CreateNetwork", `{"NetworkID":"`+logNet+`"}`)
	p.ok("NetworkDriver.CreateEndpoint", `{"NetworkID":"`+logNet+`","EndpointID":"ep1"}`)
	for _, e := range hook.AllEntries() {
		if e.Message == "ok" || e.Message == "request" {
			t.Errorf("at info, a successful call logged %q: %v", e.Message, e.Data)
		}
	}
	hook.Reset()
	if code, _ := p.call("NetworkDriver.CreateEndpoint", `{"NetworkID":"`+logNet+`","EndpointID":7}`); code != http.StatusBadRequest {
		t.Fatalf("malformed CreateEndpoint: status %d; want 400", code)
	}
	e := hook.LastEntry()
	if e == nil || e.Message != "refused" || e.Level != logrus.InfoLevel || e.Data["op"] != "NetworkDriver.CreateEndpoint" || e.Data["network"] != logNet || e.Data["took"] == nil {
		t.Fatalf("refused call's log entry: %v; want \"refused\" at info with op, network and took", e)
	}
	if err, _ := e.Data[logrus.ErrorKey].(error); err == nil || !strings.Contains(err.Error(), "malformed NetworkDriver.CreateEndpoint request") {
		t.Errorf("refused call's error: %v", e.Data[logrus.ErrorKey])
	}
}

// At debug, every call leaves its request in full and an "ok" line.
func TestCallLogAtDebug(t *testing.T) {
	p, hook := loggedPlugin(t, logrus.DebugLevel)
	p.ok("NetworkDriver.CreateNetwork", `{"NetworkID":"`+logNet+`"}`)
	hook.Reset()
	body := `{"NetworkID":"` + logNet + `","EndpointID":"ep1"}`
	p.ok("NetworkDriver.CreateEndpoint", body)
	var request, ok *logrus.Entry
	for _, e := range hook.AllEntries() {
		switch e.Message {
		case "request":
			request = e
		case "ok":
			ok = e
		}
	}
	if request == nil || request.Data["request"] != body || request.Data["endpoint"] != "ep1" || request.Data["network"] != logNet {
		t.Errorf("request entry: %v; want the body in full, with network and endpoint", request)
	}
	if ok == nil || ok.Data["op"] != "NetworkDriver.CreateEndpoint" || ok.Data["endpoint"] != "ep1" {
		t.Errorf("ok entry: %v; want op and endpoint", ok)
	}
}

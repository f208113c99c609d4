package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/driver"
	"github.com/hostpass/hostpass/errclass"
)

// heardCalls is an Observer that keeps "method result" for each call.
type heardCalls struct {
	mu    sync.Mutex
	calls []string
}

func (s *heardCalls) Request(method, result string, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if took <= 0 {
		result += " (no time)"
	}
	s.calls = append(s.calls, method+" "+result)
}

// TestObserverHearsEveryCall: each driver call reaches the observer once,
// with its result named by the refusal's class, and an unknown method,
// which no route serves, not at all (it would be a label value per path).
func TestObserverHearsEveryCall(t *testing.T) {
	dir := t.TempDir()
	log := logrus.New()
	log.SetOutput(io.Discard)
	a := audit.Open(filepath.Join(dir, "audit.jsonl"), nil)
	d, err := driver.New(driver.Config{
		Name: "hp", Hostname: "testhost", StateDir: filepath.Join(dir, "state"), Audit: a,
		HostInterfaces: func() []audit.Interface { return fakeHost },
		Log:            logrus.NewEntry(log),
	})
	if err != nil {
		t.Fatal(err)
	}
	obs := &heardCalls{}
	srv := httptest.NewServer(NewObserved(d, logrus.NewEntry(log), obs))
	t.Cleanup(func() { srv.Close(); a.Close() })
	for _, c := range []struct{ method, body string }{
		{"NetworkDriver.GetCapabilities", ""},
		{"NetworkDriver.CreateNetwork", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","Options":{"com.docker.network.internal":true}}`},
		{"NetworkDriver.CreateEndpoint", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","EndpointID":"ep1","Interface":{"Address":"172.18.0.2/16"}}`},
		{"NetworkDriver.Join", `{"NetworkID":"5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","EndpointID":"ep1","SandboxKey":"/var/run/docker/netns/x"}`},
		{"NetworkDriver.Join", `{not json`},
		{"NetworkDriver.Leave", `{"NetworkID":"nope","EndpointID":"e9"}`},
		{"NetworkDriver.NoSuchMethod", `{}`},
	} {
		res, err := http.Post(srv.URL+"/"+c.method, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	want := []string{
		"NetworkDriver.GetCapabilities ok",
		"NetworkDriver.CreateNetwork ok",
		"NetworkDriver.CreateEndpoint ok",
		"NetworkDriver.Join ok",
		"NetworkDriver.Join invalid_parameter",
		"NetworkDriver.Leave ok",
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if !slices.Equal(obs.calls, want) {
		t.Errorf("observer heard\n%s\nwant\n%s", strings.Join(obs.calls, "\n"), strings.Join(want, "\n"))
	}
}

func TestResultNamesTheClass(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{errclass.InvalidParameter(errors.New("x")), "invalid_parameter"},
		{fmt.Errorf("wrapped: %w", errclass.NotFound(errors.New("x"))), "not_found"},
		{errclass.Unavailable(errors.New("x")), "unavailable"},
		{errors.New("x"), "error"},
	} {
		if got := result(c.err); got != c.want {
			t.Errorf("result(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

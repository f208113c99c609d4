package server

import (
	"errors"
	"fmt"
	"go/build"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/driver"
	"github.com/hostpass/hostpass/errclass"
)

func TestStatusMapsEachClass(t *testing.T) {
	cause := errors.New("cause")
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"invalid parameter", errclass.InvalidParameter(cause), http.StatusBadRequest},
		{"not found", errclass.NotFound(cause), http.StatusNotFound},
		{"unavailable", errclass.Unavailable(cause), http.StatusServiceUnavailable},
		{"a class wrapped with %w", fmt.Errorf("refusing: %w", errclass.InvalidParameter(cause)), http.StatusBadRequest},
		{"the audit log", fmt.Errorf("%w: writing audit.jsonl: %w", audit.ErrUnavailable, syscall.ENOSPC), http.StatusServiceUnavailable},
		{"a malformed body", malformed("NetworkDriver.Join", cause), http.StatusBadRequest},
		{"no class", cause, http.StatusInternalServerError},
	} {
		if got := status(tc.err); got != tc.want {
			t.Errorf("%s: status(%q) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
}

// seen is the real driver, keeping the error its last call gave the server.
type seen struct {
	*driver.Driver
	err error
}

func (s *seen) Join(r *network.JoinRequest) (*network.JoinResponse, error) {
	res, err := s.Driver.Join(r)
	s.err = err
	return res, err
}

func (s *seen) CreateNetwork(r *network.CreateNetworkRequest) error {
	s.err = s.Driver.CreateNetwork(r)
	return s.err
}

func quiet() *logrus.Entry {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return logrus.NewEntry(log)
}

// serve serves one request to d on this goroutine, so that what d keeps is
// read after it is set.
func serve(d Driver, method, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	New(d, quiet()).ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/"+method, strings.NewReader(body)))
	return w
}

// A full disk under the audit log reaches the server with its class and
// its cause: the driver's refusal wraps the log's error, which wraps ENOSPC.
func TestFullAuditDiskReachesTheServerWithClassAndCause(t *testing.T) {
	// Every write fails with ENOSPC. Through a link in a folder of the
	// test's own, the log's .uncut marker lands there, not in /dev, and a
	// normal user can run this.
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	a := audit.Open(path, nil)
	defer a.Close()
	d, err := driver.New(driver.Config{Name: "hp", Hostname: "testhost", StateDir: t.TempDir(), Audit: a, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	j := &seen{Driver: d}
	w := serve(j, "NetworkDriver.Join", endpoint)

	if !errors.Is(j.err, audit.ErrUnavailable) || !errclass.IsUnavailable(j.err) {
		t.Errorf("Join's error %q: want it to wrap audit.ErrUnavailable, in the unavailable class", j.err)
	}
	if !errors.Is(j.err, syscall.ENOSPC) {
		t.Errorf("Join's error %q: want it to wrap ENOSPC, the log's cause", j.err)
	}
	want := `{"Err":"audit log unavailable: writing ` + path + `: write ` + path + `: no space left on device; refusing endpoint.join so that nothing joins unaudited"}`
	if w.Code != http.StatusServiceUnavailable || strings.TrimSpace(w.Body.String()) != want {
		t.Errorf("got %d %s, want 503 %s", w.Code, w.Body, want)
	}
}

// A state the driver cannot save reaches the server as unavailable, with
// its cause.
func TestUnsavableStateReachesTheServerWithClassAndCause(t *testing.T) {
	dir := t.TempDir()
	a := audit.Open(filepath.Join(dir, "audit.jsonl"), nil)
	defer a.Close()
	state := filepath.Join(dir, "state")
	d, err := driver.New(driver.Config{Name: "hp", Hostname: "testhost", StateDir: state, Audit: a, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(state, nil, 0o640) // the state's directory is a file
	c := &seen{Driver: d}
	w := serve(c, "NetworkDriver.CreateNetwork", createTagged)

	if !errors.Is(c.err, syscall.ENOTDIR) || !errclass.IsUnavailable(c.err) {
		t.Errorf("CreateNetwork's error %q: want it to wrap ENOTDIR, in the unavailable class", c.err)
	}
	want := `{"Err":"cannot save hostpass state: remove ` + filepath.Join(state, "networks.adopted.jsonl") + `: not a directory"}`
	if w.Code != http.StatusServiceUnavailable || strings.TrimSpace(w.Body.String()) != want {
		t.Errorf("got %d %s, want 503 %s", w.Code, w.Body, want)
	}
}

// The server maps errors by class, so it needs no package that makes them.
func TestServerDoesNotImportTheDriver(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if imp == "github.com/hostpass/hostpass/driver" {
			t.Errorf("server imports %s; it maps errors by errclass and declares the Driver it serves", imp)
		}
	}
}

package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/driver"
)

// methods are the paths the handler serves, and the audit event of each
// lifecycle call ("" for the calls that change nothing).
var methods = []struct {
	path  string
	event audit.Event
}{
	{"Plugin.Activate", ""},
	{"NetworkDriver.GetCapabilities", ""},
	{"NetworkDriver.CreateNetwork", audit.NetworkCreate},
	{"NetworkDriver.DeleteNetwork", audit.NetworkDelete},
	{"NetworkDriver.AllocateNetwork", ""},
	{"NetworkDriver.FreeNetwork", ""},
	{"NetworkDriver.CreateEndpoint", audit.EndpointCreate},
	{"NetworkDriver.DeleteEndpoint", audit.EndpointDelete},
	{"NetworkDriver.EndpointOperInfo", ""},
	{"NetworkDriver.Join", audit.EndpointJoin},
	{"NetworkDriver.Leave", audit.EndpointLeave},
	{"NetworkDriver.DiscoverNew", ""},
	{"NetworkDriver.DiscoverDelete", ""},
	{"NetworkDriver.ProgramExternalConnectivity", ""},
	{"NetworkDriver.RevokeExternalConnectivity", ""},
	{"NetworkDriver.GwAllocCheck", ""}, // last: the corpus names methods by index
}

// fuzzPlugin is the real handler over a real driver and audit log in a temp
// dir, called in-process (no socket: the fuzzer wants speed).
type fuzzPlugin struct {
	h        http.Handler
	a        *audit.Log
	auditLog string
}

func newFuzzPlugin(t testing.TB) *fuzzPlugin {
	t.Helper()
	dir := t.TempDir()
	log := logrus.New()
	log.SetOutput(io.Discard)
	p := &fuzzPlugin{auditLog: filepath.Join(dir, "audit.jsonl")}
	p.a = audit.Open(p.auditLog, nil)
	d, err := driver.New(driver.Config{
		Name: "hp", Hostname: "testhost", StateDir: filepath.Join(dir, "state"), Audit: p.a,
		HostInterfaces: func() []audit.Interface { return fakeHost },
		Log:            logrus.NewEntry(log),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.h = New(d, logrus.NewEntry(log))
	t.Cleanup(func() { p.a.Close() })
	return p
}

// serve posts body (read from r) to path and returns the recorded reply.
func (p *fuzzPlugin) serve(path string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/", body)
	req.URL.Path, req.RequestURI = path, path
	w := httptest.NewRecorder()
	p.h.ServeHTTP(w, req)
	return w
}

// records are the audit records written so far.
func (p *fuzzPlugin) records(t testing.TB) []audit.Record {
	t.Helper()
	b, err := os.ReadFile(p.auditLog)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte{'\n'}), []byte{'\n'}) {
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// FuzzHandler sends any body to any path: one of the methods the handler
// serves (which < len(methods)) or path itself. Whatever comes in, the
// reply is JSON with a status that names what happened, and a lifecycle
// call leaves exactly one audit record, refused unless answered 200.
func FuzzHandler(f *testing.F) {
	for i, m := range methods {
		f.Add(uint8(i), "", []byte(`{"NetworkID":"net1","EndpointID":"ep1","Options":{"com.docker.network.generic":{"tag":"payments"}}}`))
		f.Add(uint8(i), "", []byte(`{"NetworkID":`))
		f.Add(uint8(i), "", []byte(``))
		f.Add(uint8(255), m.path+"/", []byte(`{}`))
	}
	f.Add(uint8(255), "NetworkDriver.Frobnicate", []byte(`{}`))
	f.Add(uint8(255), "/NetworkDriver.Join", []byte(`{}`))
	f.Add(uint8(255), "NetworkDriver.Join/../NetworkDriver.Leave", []byte(`{}`))
	f.Add(uint8(2), "", []byte(`{"NetworkID":"n","Options":{"com.docker.network.generic":{"tag":"x","mtu":"9000"}},"IPv4Data":[null,{"Pool":"10.0.0.0/8"}]}`))
	f.Fuzz(func(t *testing.T, which uint8, path string, body []byte) {
		var event audit.Event
		if int(which) < len(methods) {
			path = methods[which].path
		}
		for _, m := range methods { // a path given as text may name a method too
			if path == m.path {
				event = m.event
			}
		}
		p := newFuzzPlugin(t)
		w := p.serve("/"+path, bytes.NewReader(body))

		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusServiceUnavailable:
		default:
			t.Fatalf("POST /%s %q: status %d, reply %q", path, body, w.Code, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("POST /%s %q: status %d, reply is not JSON: %q", path, body, w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/vnd.docker.plugins") {
			t.Fatalf("POST /%s: Content-Type %q", path, ct)
		}
		var reply struct{ Err string }
		json.Unmarshal(w.Body.Bytes(), &reply)
		if (w.Code == http.StatusOK) != (reply.Err == "") {
			t.Fatalf("POST /%s %q: status %d with error %q", path, body, w.Code, reply.Err)
		}

		recs := p.records(t)
		if event == "" {
			if len(recs) != 0 {
				t.Fatalf("POST /%s %q changes nothing, yet wrote %d audit records", path, body, len(recs))
			}
			return
		}
		var mine []audit.Record
		for _, r := range recs {
			if r.Event == event {
				mine = append(mine, r)
			}
		}
		if len(mine) != 1 {
			t.Fatalf("POST /%s %q: %d %s records, want 1: %+v", path, body, len(mine), event, recs)
		}
		r := mine[0]
		if w.Code == http.StatusOK && r.Outcome != audit.OK ||
			w.Code != http.StatusOK && (r.Outcome != audit.Refused || r.Error != reply.Err) {
			t.Fatalf("POST /%s %q: answered %d %q, audited %s %q", path, body, w.Code, reply.Err, r.Outcome, r.Error)
		}
	})
}

// hostile is an endless-looking body, generated as it is read: 100 MB
// that never exist in memory at once. read counts what the server took.
type hostile struct {
	prefix string
	left   int64
	read   int64
}

func (h *hostile) Read(p []byte) (int, error) {
	if h.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && h.left > 0 {
		if int(h.read) < len(h.prefix) {
			p[n] = h.prefix[h.read]
		} else {
			p[n] = 'a'
		}
		n++
		h.read++
		h.left--
	}
	return n, nil
}

// allocated returns the bytes fn allocates (cumulative, not live: a bound
// on it bounds the peak too). Deterministic enough to bound with a wide
// margin; no timing involved.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A 100 MB body is read only up to maxBody, refused with an error naming
// the limit, and the refusal is audited.
func TestHostileBodyIsCutAtMaxBody(t *testing.T) {
	p := newFuzzPlugin(t)
	for _, prefix := range []string{"", `{"NetworkID":"n","EndpointID":"`} {
		body := &hostile{prefix: prefix, left: 100 << 20}
		var w *httptest.ResponseRecorder
		n := allocated(func() { w = p.serve("/NetworkDriver.Join", body) })
		if body.read > maxBody+64<<10 {
			t.Errorf("prefix %q: the handler read %d bytes of the body, want at most about %d", prefix, body.read, maxBody)
		}
		if n > 16<<20 {
			t.Errorf("prefix %q: the handler allocated %d bytes for a 100 MB body, want under 16 MiB", prefix, n)
		}
		var reply struct{ Err string }
		json.Unmarshal(w.Body.Bytes(), &reply)
		if w.Code != http.StatusBadRequest || !strings.Contains(reply.Err, "request body too large") {
			t.Errorf("prefix %q: got %d %q, want 400 naming the size limit", prefix, w.Code, reply.Err)
		}
	}
	recs := p.records(t)
	if len(recs) != 2 || recs[1].Event != audit.EndpointJoin || recs[1].Outcome != audit.Refused || !strings.Contains(recs[1].Error, "too large") {
		t.Errorf("records %+v, want two refused joins naming the size limit", recs)
	}
}

// Package server serves a network.Driver over HTTP as Docker's remote network
// driver API expects. It replaces go-plugins-helpers' handler (kept for the
// wire types) for three reasons: that handler has no graceful shutdown, turns
// every error into HTTP 500, and answers a malformed body in plain text that
// is never audited.
package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/netutil"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/errclass"
)

// maxBody bounds a request body; Docker's largest requests are a few KiB.
const maxBody = 1 << 20

// The server's timeouts. Docker sends a request's headers and body at once
// and keeps its connection open between calls, so a client that takes
// seconds over a few KiB is stuck or hostile, and would hold a connection
// and a goroutine for ever.
const (
	// HeaderTimeout bounds reading a request's headers.
	HeaderTimeout = 10 * time.Second
	// BodyTimeout bounds reading a whole request, headers and body.
	BodyTimeout = 30 * time.Second
	// IdleTimeout closes a kept-alive connection that has been idle this
	// long; Docker dials again when it next calls.
	IdleTimeout = 2 * time.Minute
)

// HTTPServer returns the http.Server for h, with the timeouts above and
// net/http's own complaints sent to errorLog.
func HTTPServer(h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: HeaderTimeout,
		ReadTimeout:       BodyTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          errorLog,
	}
}

// MaxConns caps the connections served at once. Every connection costs a
// goroutine and its buffers (about 32 KB each, measured with 3000 clients
// holding one open), so without a cap any client on the socket could grow
// the daemon without bound. dockerd opens a connection per call in flight,
// a handful, a few dozen when many containers start at once; 256 leaves
// room for that many times over and bounds the cost near 8 MB. Beyond it,
// a connection waits in the socket's backlog, not refused, until one
// closes: the timeouts above free any slot a stalled client holds.
const MaxConns = 256

// Serve serves srv on l, at most MaxConns connections at a time.
func Serve(srv *http.Server, l net.Listener) error {
	return srv.Serve(netutil.LimitListener(l, MaxConns))
}

// Driver is what the server serves. It is declared here, not imported, so
// that the server depends on no driver: errors reach it with a class
// (errclass), which status maps to an HTTP status.
type Driver interface {
	network.Driver
	// Malformed records a lifecycle call, named by its audit event, whose
	// body could not be decoded; err is the refusal the server answers.
	Malformed(event audit.Event, err error)
	// GetSkipGwAlloc answers NetworkDriver.GwAllocCheck: whether a network
	// created with options (CreateNetwork's Options) needs no IPv4 or IPv6
	// gateway address. It is moby's driverapi.GwAllocChecker, without its
	// error: GwAllocCheck must never refuse, because Docker asks it before
	// CreateNetwork, and a refusal there would fail `docker network create`
	// with nothing in the audit trail. Refusals belong to CreateNetwork,
	// which records them.
	GetSkipGwAlloc(options map[string]any) (skipIPv4, skipIPv6 bool)
}

// The wire types go-plugins-helpers lacks: GwAllocChecker came with Docker
// 28 (moby commit 634951457d; libnetwork/drivers/remote/api/api.go).

// capabilitiesResponse is the reply to NetworkDriver.GetCapabilities.
// GwAllocChecker tells Docker 28 and later to ask NetworkDriver.GwAllocCheck
// before each CreateNetwork; older engines ignore the field.
type capabilitiesResponse struct {
	network.CapabilitiesResponse
	GwAllocChecker bool
}

// gwAllocCheckRequest is the body of NetworkDriver.GwAllocCheck.
type gwAllocCheckRequest struct {
	// Options is the map the CreateNetwork that follows will carry.
	Options map[string]any
}

// gwAllocCheckResponse is the reply to NetworkDriver.GwAllocCheck: true
// means Docker reserves no gateway address of that family, unless the
// user gave one (--gateway).
type gwAllocCheckResponse struct {
	SkipIPv4, SkipIPv6 bool
}

// Observer hears of each driver call (metrics): its method
// (NetworkDriver.Join), its result (ok, or the refusal's class:
// invalid_parameter, not_found, unavailable, error) and its time.
type Observer interface {
	Request(method, result string, took time.Duration)
}

// New returns the HTTP handler for d.
func New(d Driver, log *logrus.Entry) http.Handler { return NewObserved(d, log, nil) }

// NewObserved is New, telling obs (if not nil) of every call.
func NewObserved(d Driver, log *logrus.Entry, obs Observer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string][]string{"Implements": {"NetworkDriver"}})
	})
	h := &handler{d: d, log: log, obs: obs}
	// The routes: each method of the API, the audit event recorded when its
	// body is malformed ("" for the calls that leave no record), and the
	// driver's call that serves it.
	route(mux, h, "GetCapabilities", "", func(*struct{}) (any, error) {
		caps, err := d.GetCapabilities()
		if err != nil {
			return nil, err
		}
		return capabilitiesResponse{CapabilitiesResponse: *caps, GwAllocChecker: true}, nil
	})
	// GwAllocCheck is a question about options, asked before CreateNetwork;
	// it changes nothing, so it leaves no record, as GetCapabilities does.
	// Whatever Docker does next is recorded: the CreateNetwork, or nothing
	// if it gives up before. Only a body that is no request at all is
	// refused (400, by route's decoding), as for every method.
	route(mux, h, "GwAllocCheck", "", func(r *gwAllocCheckRequest) (any, error) {
		v4, v6 := d.GetSkipGwAlloc(r.Options)
		return gwAllocCheckResponse{SkipIPv4: v4, SkipIPv6: v6}, nil
	})
	route(mux, h, "CreateNetwork", audit.NetworkCreate, none(d.CreateNetwork))
	route(mux, h, "DeleteNetwork", audit.NetworkDelete, none(d.DeleteNetwork))
	route(mux, h, "AllocateNetwork", "", func(r *network.AllocateNetworkRequest) (any, error) { return d.AllocateNetwork(r) })
	route(mux, h, "FreeNetwork", "", none(d.FreeNetwork))
	route(mux, h, "CreateEndpoint", audit.EndpointCreate, func(r *network.CreateEndpointRequest) (any, error) {
		res, err := d.CreateEndpoint(r)
		if err == nil && *res == (network.CreateEndpointResponse{}) {
			return createdEndpoint, nil
		}
		return res, err
	})
	route(mux, h, "DeleteEndpoint", audit.EndpointDelete, none(d.DeleteEndpoint))
	route(mux, h, "EndpointOperInfo", "", func(r *network.InfoRequest) (any, error) { return d.EndpointInfo(r) })
	route(mux, h, "Join", audit.EndpointJoin, func(r *network.JoinRequest) (any, error) {
		res, err := d.Join(r)
		if err == nil && isHostJoin(res) {
			return joined[res.DisableGatewayService], nil
		}
		return res, err
	})
	route(mux, h, "Leave", audit.EndpointLeave, none(d.Leave))
	route(mux, h, "DiscoverNew", "", none(d.DiscoverNew))
	route(mux, h, "DiscoverDelete", "", none(d.DiscoverDelete))
	route(mux, h, "ProgramExternalConnectivity", "", none(d.ProgramExternalConnectivity))
	route(mux, h, "RevokeExternalConnectivity", "", none(d.RevokeExternalConnectivity))
	unknown := func(w http.ResponseWriter, r *http.Request) {
		msg := fmt.Sprintf("unknown method %q; hostpass serves Plugin.Activate and NetworkDriver.*", strings.TrimPrefix(r.URL.Path, "/"))
		reply(w, http.StatusNotFound, network.NewErrorResponse(msg))
	}
	// Exact paths only: for a path such as //NetworkDriver.Join or
	// a/../NetworkDriver.Leave, ServeMux answers a redirect, not JSON.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := mux.Handler(r); pattern == r.URL.Path {
			h.ServeHTTP(w, r)
			return
		}
		unknown(w, r)
	})
}

// The replies of a create and a join that succeed, as reply would encode
// them, made once: they are the same for every container.
var (
	createdEndpoint = encode(network.CreateEndpointResponse{})
	joined          = map[bool]encoded{
		false: encode(network.JoinResponse{}),
		true:  encode(network.JoinResponse{DisableGatewayService: true}),
	}
)

// isHostJoin reports whether res sets nothing up but, perhaps,
// DisableGatewayService: the only replies hostpass's Join makes. It names
// JoinResponse's fields by hand; TestIsHostJoinKnowsEveryField fails when
// upstream adds one, which the canned reply would otherwise drop.
func isHostJoin(res *network.JoinResponse) bool {
	return res.InterfaceName == (network.InterfaceName{}) && res.Gateway == "" &&
		res.GatewayIPv6 == "" && res.StaticRoutes == nil
}

type handler struct {
	d   Driver
	log *logrus.Entry
	obs Observer
}

// observe tells the observer, if any, of a call's result.
func (h *handler) observe(method string, err error, start time.Time) {
	if h.obs != nil {
		h.obs.Request(method, result(err), time.Since(start))
	}
}

// none adapts a call that answers with an empty object.
func none[Req any](call func(*Req) error) func(*Req) (any, error) {
	return func(r *Req) (any, error) { return struct{}{}, call(r) }
}

// route serves NetworkDriver.<name>: decode, call, log one line, answer. A
// body that does not decode is refused, and recorded under event unless
// event is "". Logging never blocks the call: the daemon's log output is a
// logout.Writer.
func route[Req any](mux *http.ServeMux, h *handler, name string, event audit.Event, call func(*Req) (any, error)) {
	method := "NetworkDriver." + name
	mux.HandleFunc("/"+method, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		buf := bodies.Get().(*bytes.Buffer)
		defer putBody(buf)
		_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBody))
		body := buf.Bytes()
		if err != nil && !isTooLarge(err) {
			// The client went away or stalled before its body arrived
			// (truncated, reset, timed out): there is no request to audit,
			// and a record for each would let any client flood the log.
			// A body that arrived whole but does not decode is audited
			// below as malformed.
			h.log.WithFields(logrus.Fields{"op": method}).WithError(err).Debug("request body did not arrive; not audited")
			reply(w, http.StatusBadRequest, network.NewErrorResponse(fmt.Sprintf("%s: request body did not arrive in full: %v", method, err)))
			h.observe(method, errclass.InvalidParameter(err), start)
			return
		}
		req := new(Req)
		if err == nil && len(body) > 0 {
			err = json.Unmarshal(body, req)
		} else if err == nil && name != "GetCapabilities" {
			err = errors.New("empty body")
		}
		var res any
		if err != nil {
			err = malformed(method, err)
			if event != "" {
				h.d.Malformed(event, err)
			}
		} else {
			res, err = call(req)
		}
		// One line per call at debug: the audit file and syslog carry every
		// call's record. A refusal is rarer and is what an operator looks
		// for, so it stays at info. The line, and the second decoding of
		// the body for its IDs, are made only when the line is written:
		// at info every call paid for them and wrote nothing.
		debug := h.log.Logger.IsLevelEnabled(logrus.DebugLevel)
		var entry *logrus.Entry
		if debug || err != nil {
			var ids struct{ NetworkID, EndpointID string }
			json.Unmarshal(body, &ids) // for the log line only
			entry = h.log.WithFields(logrus.Fields{
				"op": method, "network": ids.NetworkID, "endpoint": ids.EndpointID,
				"took": time.Since(start).Round(time.Microsecond).String(),
			})
		}
		if debug {
			entry.WithField("request", string(body)).Debug("request")
		}
		if err != nil {
			entry.WithError(err).Info("refused")
			reply(w, status(err), network.NewErrorResponse(err.Error()))
			h.observe(method, err, start)
			return
		}
		if debug {
			entry.Debug("ok")
		}
		reply(w, http.StatusOK, res)
		h.observe(method, nil, start)
	})
}

// bodies holds the buffers request bodies are read into. What is decoded
// from one shares none of its bytes (encoding/json copies every string),
// so a buffer is reused once its call has answered.
var bodies = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 4096)) }}

// putBody returns buf to bodies, unless a body larger than Docker's (a few
// KiB) grew it: up to MaxConns buffers can be pooled, and a rare large
// request must not keep its buffer alive in each.
func putBody(buf *bytes.Buffer) {
	if buf.Cap() <= 16<<10 {
		buf.Reset()
		bodies.Put(buf)
	}
}

func isTooLarge(err error) bool {
	var tooLarge *http.MaxBytesError
	return errors.As(err, &tooLarge)
}

// malformed is the refusal of a body that does not decode as the request of
// method.
func malformed(method string, cause error) error {
	return errclass.InvalidParameter(fmt.Errorf("malformed %s request: %w; expected the JSON object of Docker's remote network driver API", method, cause))
}

// status maps an error's class to its HTTP status. Docker shows the text
// whatever the status; the status is for anyone else reading the socket.
func status(err error) int {
	switch {
	case errclass.IsInvalidParameter(err):
		return http.StatusBadRequest
	case errclass.IsNotFound(err):
		return http.StatusNotFound
	case errclass.IsUnavailable(err):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// result names a call's outcome for metrics: ok, or its error's class, as
// status maps it (a label with few values; the error's text is in the log).
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errclass.IsInvalidParameter(err):
		return "invalid_parameter"
	case errclass.IsNotFound(err):
		return "not_found"
	case errclass.IsUnavailable(err):
		return "unavailable"
	}
	return "error"
}

// encoded is a reply encoded beforehand (encode).
type encoded []byte

// encode is v as reply sends it: JSON and a newline.
func encode(v any) encoded {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the replies encoded beforehand are fixed wire types
	}
	return append(b, '\n')
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	w.WriteHeader(code)
	if b, ok := v.(encoded); ok {
		w.Write(b)
		return
	}
	json.NewEncoder(w).Encode(v)
}

// Package bench is hostpass's load generator: concurrent clients calling a
// daemon's socket as dockerd does, each on its own kept-alive connection, and
// a summary of what they saw. It is the engine of `hostpass bench`, kept off
// the daemon's code: it speaks only the wire protocol.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
)

// Ops are the operations bench can drive, in the order help lists them.
var Ops = []string{"join", "create-endpoint", "capabilities", "container", "lifecycle"}

// methods maps each of Ops to the driver method it calls.
var methods = map[string]string{
	"join":            "NetworkDriver.Join",
	"create-endpoint": "NetworkDriver.CreateEndpoint",
	"capabilities":    "NetworkDriver.GetCapabilities",
	// container is what dockerd calls to attach one container:
	// CreateEndpoint, then Join; the pair counts as one call.
	"container": "NetworkDriver.CreateEndpoint+Join",
	// lifecycle is one container's whole life: CreateEndpoint, Join,
	// Leave, DeleteEndpoint, counted as one call; the daemon holds no
	// endpoint after it, as after dockerd's, so its memory stays what a
	// host's steady state costs.
	"lifecycle": "NetworkDriver.CreateEndpoint+Join+Leave+DeleteEndpoint",
}

const (
	DefaultClients  = 16
	DefaultDuration = 10 * time.Second
	MaxClients      = 4096
	// CallTimeout bounds one call, so that a wedged daemon cannot hold
	// the run past its Duration or Calls for longer than this.
	CallTimeout = 10 * time.Second
	// probeTimeout bounds the first call, which checks that a daemon
	// answers on the socket at all.
	probeTimeout = 5 * time.Second
	sandboxKey   = "/var/run/docker/netns/bench"
	// Tag marks the records of the network bench creates itself.
	Tag = "hostpass-bench"
)

// Options is one run's shape.
type Options struct {
	Socket   string
	Clients  int
	Duration time.Duration // bounds the run when Calls is 0
	Calls    int           // total calls, shared by the clients
	Op       string        // one of Ops
	Network  string        // empty: create a network of its own, delete it at the end
}

// Check refuses options that cannot run; the error names the flag and what
// it accepts. durationSet and callsSet say which bound the user gave.
func (o Options) Check(durationSet, callsSet bool) error {
	switch {
	case o.Socket == "":
		return errors.New("--socket is required: the unix socket the daemon serves on (hostpass serve --socket)")
	case o.Clients < 1 || o.Clients > MaxClients:
		return fmt.Errorf("--clients %d is out of range; accepted: 1 to %d", o.Clients, MaxClients)
	case durationSet && callsSet:
		return errors.New("--duration and --calls both given; accepted: one of them (--duration bounds the run by time, --calls by the total number of calls)")
	case callsSet && o.Calls < 1:
		return fmt.Errorf("--calls %d is out of range; accepted: 1 or more", o.Calls)
	case o.Duration <= 0:
		return fmt.Errorf("--duration %s is out of range; accepted: more than 0, e.g. 10s", o.Duration)
	case methods[o.Op] == "":
		return fmt.Errorf("unknown --op %q; accepted: %s", o.Op, strings.Join(Ops, ", "))
	}
	return nil
}

// Result is a run's summary and its failures.
type Result struct {
	Summary
	// FirstErr is the earliest failed call's error, nil when none failed.
	FirstErr error
	// Cleanup is set when an endpoint or the network bench created could
	// not be deleted.
	Cleanup error
}

// Run checks that a daemon answers, creates a network unless o.Network
// names one, loads the daemon until the run is over or ctx is cancelled,
// and deletes the network it created. The error says that the run could not
// start; failed calls are counted in the result.
func Run(ctx context.Context, o Options) (res Result, err error) {
	if err := Probe(ctx, o.Socket); err != nil {
		return Result{}, err
	}
	ctl := newClient(o.Socket)
	defer ctl.close()
	netID := o.Network
	if netID == "" && o.Op != "capabilities" {
		netID = randomHex(32) // Docker's network IDs are 64 hex digits
		opts := map[string]any{"com.docker.network.generic": map[string]string{"tag": Tag}}
		if _, err := ctl.call(ctx, "NetworkDriver.CreateNetwork", &network.CreateNetworkRequest{NetworkID: netID, Options: opts}); err != nil {
			return Result{}, fmt.Errorf("creating the bench network: %w", err)
		}
		defer func() { // res is named: the deferred delete can report into it
			// Not ctx: an interrupted run still deletes its network.
			dctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
			defer cancel()
			if _, err := ctl.call(dctx, "NetworkDriver.DeleteNetwork", &network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
				res.Cleanup = errors.Join(res.Cleanup, fmt.Errorf("deleting the bench network %s: %w", netID, err))
			}
		}()
	}
	lr := runLoad(ctx, o, netID)
	res.Summary, res.FirstErr, res.Cleanup = summarize(o, lr), lr.firstErr, lr.cleanup
	return res, nil
}

// Probe checks that a network driver answers on socket, as Run does before
// any load: for a caller that has work to do before Run.
func Probe(ctx context.Context, socket string) error {
	c := newClient(socket)
	defer c.close()
	if err := c.probe(ctx); err != nil {
		return fmt.Errorf("no hostpass daemon answers on %s: %w", socket, err)
	}
	return nil
}

// client is one client's HTTP stack: its own transport, so that each
// client keeps one connection of its own alive, as dockerd's would.
type client struct {
	tr   *http.Transport
	http *http.Client
}

func newClient(socket string) *client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}
	return &client{tr: tr, http: &http.Client{Transport: tr, Timeout: CallTimeout}}
}

func (c *client) close() { c.tr.CloseIdleConnections() }

// probe checks that a network plugin answers, before any load.
func (c *client) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	body, err := c.call(ctx, "Plugin.Activate", nil)
	if err != nil {
		return err
	}
	var act struct{ Implements []string }
	if err := json.Unmarshal(body, &act); err != nil || !slices.Contains(act.Implements, "NetworkDriver") {
		return fmt.Errorf("Plugin.Activate answered %q, not a network driver", bytes.TrimSpace(body))
	}
	return nil
}

// call POSTs req as JSON (nil: an empty body) to /method. Any status but 200
// is an error carrying the plugin's own text.
func (c *client) call(ctx context.Context, method string, req any) ([]byte, error) {
	var body io.Reader = http.NoBody
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://hostpass/"+method, body)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", sdk.DefaultContentTypeV1_1)
	resp, err := c.http.Do(hr)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) { // drop `Post "http://hostpass/...":`
			err = uerr.Err
		}
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	// Read to the end, so the connection is reused.
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the reply: %w", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e network.ErrorResponse
		if json.Unmarshal(out, &e) != nil || e.Err == "" {
			e.Err = string(bytes.TrimSpace(out))
		}
		return nil, fmt.Errorf("%s: HTTP %d: %s", method, resp.StatusCode, e.Err)
	}
	return out, nil
}

// loadResult is what the clients did, merged.
type loadResult struct {
	calls, errors int
	firstErr      error
	elapsed       time.Duration
	latencies     []time.Duration // of successful calls, sorted
	cleanup       error           // the first endpoint the run left that could not be deleted
}

// leftover is an endpoint a run created, by its number, and whether it is
// still joined.
type leftover struct {
	n      int64
	joined bool
}

// deleteLeftovers leaves and deletes, after the timed run, the endpoints it
// created (create-endpoint, container), as dockerd does when a container
// goes: otherwise the daemon's endpoint map grows round after round, and
// its memory and speed with it, which no host sees. Each client deletes
// its own, on a connection of its own; not ctx: an interrupted run cleans
// up too.
func deleteLeftovers(o Options, netID, prefix string, results []clientResult) error {
	errs := make([]error, len(results))
	var wg sync.WaitGroup
	for i := range results {
		if len(results[i].left) == 0 {
			continue
		}
		wg.Add(1)
		go func(left []leftover, errp *error) {
			defer wg.Done()
			c := newClient(o.Socket)
			defer c.close()
			for _, ep := range left {
				epID := fmt.Sprintf("%s%032x", prefix, ep.n)
				ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
				var err error
				if ep.joined {
					_, err = c.call(ctx, "NetworkDriver.Leave", &network.LeaveRequest{NetworkID: netID, EndpointID: epID})
				}
				if err == nil {
					_, err = c.call(ctx, "NetworkDriver.DeleteEndpoint", &network.DeleteEndpointRequest{NetworkID: netID, EndpointID: epID})
				}
				cancel()
				if err != nil && *errp == nil {
					*errp = fmt.Errorf("deleting the bench endpoint %s: %w", epID, err)
				}
			}
		}(results[i].left, &errs[i])
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// clientResult is one client's share; only that client writes it.
type clientResult struct {
	calls, errors int
	firstErr      error
	firstErrAt    time.Time
	left          []leftover // endpoints the run created and did not delete
	latencies     []time.Duration
}

// runLoad runs o.Clients clients until the deadline passes or o.Calls calls
// have been made, and waits for calls in flight.
func runLoad(ctx context.Context, o Options, netID string) loadResult {
	method := methods[o.Op]
	prefix := randomHex(16) // endpoint IDs: a per-run prefix and a counter, 64 hex digits
	var issued atomic.Int64
	start := time.Now()
	deadline := start.Add(o.Duration)
	// next claims the next call's number; false when the run is over.
	next := func() (int64, bool) {
		if ctx.Err() != nil {
			return 0, false
		}
		n := issued.Add(1)
		if o.Calls > 0 {
			return n, n <= int64(o.Calls)
		}
		return n, time.Now().Before(deadline)
	}
	results := make([]clientResult, o.Clients)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(r *clientResult) {
			defer wg.Done()
			c := newClient(o.Socket)
			defer c.close()
			for {
				n, ok := next()
				if !ok {
					return
				}
				epID := fmt.Sprintf("%s%032x", prefix, n)
				join := &network.JoinRequest{NetworkID: netID, EndpointID: epID, SandboxKey: sandboxKey}
				create := &network.CreateEndpointRequest{NetworkID: netID, EndpointID: epID}
				t0 := time.Now()
				var err error
				switch o.Op {
				case "join":
					_, err = c.call(ctx, method, join)
				case "create-endpoint":
					if _, err = c.call(ctx, method, create); err == nil {
						r.left = append(r.left, leftover{n: n})
					}
				case "container", "lifecycle":
					if _, err = c.call(ctx, "NetworkDriver.CreateEndpoint", create); err == nil {
						_, err = c.call(ctx, "NetworkDriver.Join", join)
						r.left = append(r.left, leftover{n: n, joined: err == nil})
					}
					if err == nil && o.Op == "lifecycle" {
						if _, err = c.call(ctx, "NetworkDriver.Leave", &network.LeaveRequest{NetworkID: netID, EndpointID: epID}); err == nil {
							r.left[len(r.left)-1].joined = false
							if _, err = c.call(ctx, "NetworkDriver.DeleteEndpoint", &network.DeleteEndpointRequest{NetworkID: netID, EndpointID: epID}); err == nil {
								r.left = r.left[:len(r.left)-1]
							}
						}
					}
				default:
					_, err = c.call(ctx, method, nil)
				}
				took := time.Since(t0)
				if err != nil && ctx.Err() != nil {
					return // interrupted: not the daemon's failure
				}
				r.calls++
				if err != nil {
					r.errors++
					if r.firstErr == nil {
						r.firstErr, r.firstErrAt = err, t0
					}
					continue
				}
				r.latencies = append(r.latencies, took)
			}
		}(&results[i])
	}
	wg.Wait()
	res := loadResult{elapsed: time.Since(start)}
	res.cleanup = deleteLeftovers(o, netID, prefix, results)
	var firstAt time.Time
	for _, r := range results {
		res.calls += r.calls
		res.errors += r.errors
		res.latencies = append(res.latencies, r.latencies...)
		if r.firstErr != nil && (res.firstErr == nil || r.firstErrAt.Before(firstAt)) {
			res.firstErr, firstAt = r.firstErr, r.firstErrAt
		}
	}
	slices.Sort(res.latencies)
	return res
}

// Summary is the one line bench prints, or its JSON object.
type Summary struct {
	Op        string  `json:"op"`
	Clients   int     `json:"clients"`
	Calls     int     `json:"calls"`
	Errors    int     `json:"errors"`
	DurationS float64 `json:"duration_s"`
	Rate      float64 `json:"rate"` // successful calls per second
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
}

func summarize(o Options, r loadResult) Summary {
	s := Summary{Op: o.Op, Clients: o.Clients, Calls: r.calls, Errors: r.errors, DurationS: r.elapsed.Seconds()}
	if s.DurationS > 0 {
		s.Rate = float64(len(r.latencies)) / s.DurationS
	}
	s.P50Ms = ms(percentile(r.latencies, 0.50))
	s.P99Ms = ms(percentile(r.latencies, 0.99))
	return s
}

func (s Summary) String() string {
	return fmt.Sprintf("op=%s clients=%d calls=%d errors=%d duration=%.2fs rate=%.1f/s p50=%.3fms p99=%.3fms",
		s.Op, s.Clients, s.Calls, s.Errors, s.DurationS, s.Rate, s.P50Ms, s.P99Ms)
}

// percentile is the nearest-rank percentile of sorted; 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

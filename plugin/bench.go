package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
)

// The operations bench can drive, and the driver method each one calls.
var benchOps = map[string]string{
	"join":            "NetworkDriver.Join",
	"create-endpoint": "NetworkDriver.CreateEndpoint",
	"capabilities":    "NetworkDriver.GetCapabilities",
}

var benchOpNames = []string{"join", "create-endpoint", "capabilities"}

const (
	benchDefaultClients  = 16
	benchDefaultDuration = 10 * time.Second
	benchMaxClients      = 4096
	// benchCallTimeout bounds one call, so that a wedged daemon cannot hold
	// the run past its --duration or --calls for longer than this.
	benchCallTimeout = 10 * time.Second
	// benchProbeTimeout bounds the first call, which checks that a daemon
	// answers on the socket at all.
	benchProbeTimeout = 5 * time.Second
	benchSandboxKey   = "/var/run/docker/netns/bench"
	// benchTag marks the records of the network bench creates itself.
	benchTag = "hostpass-bench"
)

type benchOptions struct {
	socket   string
	clients  int
	duration time.Duration
	calls    int // 0: the run is bounded by duration
	op       string
	network  string // empty: bench creates its own network and deletes it
	json     bool
}

func benchFlags(o *benchOptions, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hostpass bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.socket, "socket", "", "unix socket of the hostpass daemon to load (required)")
	fs.IntVar(&o.clients, "clients", benchDefaultClients, fmt.Sprintf("concurrent clients, each with its own keep-alive connection (1 to %d)", benchMaxClients))
	fs.DurationVar(&o.duration, "duration", benchDefaultDuration, "how long to run; not with --calls")
	fs.IntVar(&o.calls, "calls", 0, "total calls to make, shared by the clients; not with --duration")
	fs.StringVar(&o.op, "op", "join", "operation: "+strings.Join(benchOpNames, ", "))
	fs.StringVar(&o.network, "network", "", "network ID to call on (default: create a network of its own, delete it at the end)")
	fs.BoolVar(&o.json, "json", false, "print the summary as a JSON object")
	return fs
}

func benchUsage(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprintln(out, "Usage: hostpass bench --socket PATH [flags]\n\nLoads a hostpass daemon over its socket and prints one summary line:\ncalls, errors, rate of successful calls, and their p50 and p99 latency.\n\nFlags:")
	fs.SetOutput(out)
	fs.PrintDefaults()
}

// parseBench parses and checks the flags; the error names the flag and what
// it accepts.
func parseBench(args []string, stdout, stderr io.Writer) (benchOptions, int, error) {
	var o benchOptions
	fs := benchFlags(&o, stderr)
	fs.Usage = func() {} // --help prints it to stdout below; a bad flag only its error
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			benchUsage(fs, stdout)
			return o, 0, err
		}
		fmt.Fprintln(stderr, "hostpass bench: see hostpass bench --help") // after the flag package's own line
		return o, 2, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q; it takes flags only", fs.Arg(0))
	case o.socket == "":
		err = errors.New("--socket is required: the unix socket the daemon serves on (hostpass serve --socket)")
	case o.clients < 1 || o.clients > benchMaxClients:
		err = fmt.Errorf("--clients %d is out of range; accepted: 1 to %d", o.clients, benchMaxClients)
	case set["duration"] && set["calls"]:
		err = errors.New("--duration and --calls both given; accepted: one of them (--duration bounds the run by time, --calls by the total number of calls)")
	case set["calls"] && o.calls < 1:
		err = fmt.Errorf("--calls %d is out of range; accepted: 1 or more", o.calls)
	case o.duration <= 0:
		err = fmt.Errorf("--duration %s is out of range; accepted: more than 0, e.g. 10s", o.duration)
	case benchOps[o.op] == "":
		err = fmt.Errorf("unknown --op %q; accepted: %s", o.op, strings.Join(benchOpNames, ", "))
	}
	if err != nil {
		fmt.Fprintf(stderr, "hostpass bench: %v\n", err)
		return o, 2, err
	}
	return o, 0, nil
}

func runBench(args []string, stdout, stderr io.Writer) int {
	o, code, err := parseBench(args, stdout, stderr)
	if err != nil {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ctl := newBenchClient(o.socket)
	defer ctl.close()
	if err := ctl.probe(ctx); err != nil {
		fmt.Fprintf(stderr, "hostpass bench: no hostpass daemon answers on %s: %v\n", o.socket, err)
		return 1
	}
	netID := o.network
	if netID == "" && o.op != "capabilities" {
		netID = randomHex(32) // Docker's network IDs are 64 hex digits
		opts := map[string]any{"com.docker.network.generic": map[string]string{"tag": benchTag}}
		if _, err := ctl.call(ctx, "NetworkDriver.CreateNetwork", &network.CreateNetworkRequest{NetworkID: netID, Options: opts}); err != nil {
			fmt.Fprintf(stderr, "hostpass bench: creating the bench network: %v\n", err)
			return 1
		}
		defer func() {
			// Not ctx: an interrupted run still deletes its network.
			dctx, cancel := context.WithTimeout(context.Background(), benchCallTimeout)
			defer cancel()
			if _, err := ctl.call(dctx, "NetworkDriver.DeleteNetwork", &network.DeleteNetworkRequest{NetworkID: netID}); err != nil {
				fmt.Fprintf(stderr, "hostpass bench: deleting the bench network %s: %v\n", netID, err)
			}
		}()
	}

	res := runLoad(ctx, o, netID)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "hostpass bench: interrupted; the summary covers the calls made so far")
	}
	sum := summarize(o, res)
	if o.json {
		b, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintln(stdout, sum)
	}
	if res.errors > 0 {
		fmt.Fprintf(stderr, "hostpass bench: %d of %d calls failed; first: %v\n", res.errors, res.calls, res.firstErr)
		return 1
	}
	return 0
}

// benchClient is one client's HTTP stack: its own transport, so that each
// client keeps one connection of its own alive, as dockerd's would.
type benchClient struct {
	tr   *http.Transport
	http *http.Client
}

func newBenchClient(socket string) *benchClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}
	return &benchClient{tr: tr, http: &http.Client{Transport: tr, Timeout: benchCallTimeout}}
}

func (c *benchClient) close() { c.tr.CloseIdleConnections() }

// probe checks that a network plugin answers, before any load.
func (c *benchClient) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, benchProbeTimeout)
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
func (c *benchClient) call(ctx context.Context, method string, req any) ([]byte, error) {
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
}

// clientResult is one client's share; only that client writes it.
type clientResult struct {
	calls, errors int
	firstErr      error
	firstErrAt    time.Time
	latencies     []time.Duration
}

// runLoad runs o.clients clients until the deadline passes or o.calls calls
// have been made, and waits for calls in flight.
func runLoad(ctx context.Context, o benchOptions, netID string) loadResult {
	method := benchOps[o.op]
	prefix := randomHex(16) // endpoint IDs: a per-run prefix and a counter, 64 hex digits
	var issued atomic.Int64
	start := time.Now()
	deadline := start.Add(o.duration)
	// next claims the next call's number; false when the run is over.
	next := func() (int64, bool) {
		if ctx.Err() != nil {
			return 0, false
		}
		n := issued.Add(1)
		if o.calls > 0 {
			return n, n <= int64(o.calls)
		}
		return n, time.Now().Before(deadline)
	}
	results := make([]clientResult, o.clients)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(r *clientResult) {
			defer wg.Done()
			c := newBenchClient(o.socket)
			defer c.close()
			for {
				n, ok := next()
				if !ok {
					return
				}
				var req any
				epID := fmt.Sprintf("%s%032x", prefix, n)
				switch o.op {
				case "join":
					req = &network.JoinRequest{NetworkID: netID, EndpointID: epID, SandboxKey: benchSandboxKey}
				case "create-endpoint":
					req = &network.CreateEndpointRequest{NetworkID: netID, EndpointID: epID}
				}
				t0 := time.Now()
				_, err := c.call(ctx, method, req)
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

// benchSummary is the one line bench prints, or its JSON object.
type benchSummary struct {
	Op        string  `json:"op"`
	Clients   int     `json:"clients"`
	Calls     int     `json:"calls"`
	Errors    int     `json:"errors"`
	DurationS float64 `json:"duration_s"`
	Rate      float64 `json:"rate"` // successful calls per second
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
}

func summarize(o benchOptions, r loadResult) benchSummary {
	s := benchSummary{Op: o.op, Clients: o.clients, Calls: r.calls, Errors: r.errors, DurationS: r.elapsed.Seconds()}
	if s.DurationS > 0 {
		s.Rate = float64(len(r.latencies)) / s.DurationS
	}
	s.P50Ms = ms(percentile(r.latencies, 0.50))
	s.P99Ms = ms(percentile(r.latencies, 0.99))
	return s
}

func (s benchSummary) String() string {
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/bench"
)

type benchOptions struct {
	bench.Options
	json     bool
	baseline bool
	rounds   int
	fsyncDir string
	noop     string // where the no-op driver runs: child or in-process
	serveNop string // hidden: serve the no-op driver on this socket until signalled
}

// check refuses the baseline flags where they cannot apply.
func (o benchOptions) check(flags interface{ Changed(string) bool }) error {
	switch {
	case !o.baseline && (flags.Changed("rounds") || flags.Changed("fsync-dir") || flags.Changed("noop")):
		return errors.New("--rounds, --fsync-dir and --noop need --baseline")
	case o.baseline && o.json:
		return errors.New("--json and --baseline both given; accepted: one of them (--baseline prints text only)")
	case o.baseline && o.Calls > 0:
		return errors.New("--calls and --baseline both given; accepted: --duration with --baseline (each side of a round runs that long)")
	case o.noop != "child" && o.noop != "in-process":
		return fmt.Errorf("unknown --noop %q; accepted: child, in-process", o.noop)
	case o.rounds < 1 || o.rounds > 100:
		return fmt.Errorf("--rounds %d is out of range; accepted: 1 to 100", o.rounds)
	}
	if o.fsyncDir != "" {
		if st, err := os.Stat(o.fsyncDir); err != nil || !st.IsDir() {
			why := "not a folder"
			if err != nil {
				why = err.Error()
			}
			return fmt.Errorf("--fsync-dir %s: %s; accepted: an existing folder, the audit log's, where the floor driver fsyncs", o.fsyncDir, why)
		}
	}
	return nil
}

func newBenchCommand() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench --socket PATH [flags]",
		Short: "Load the daemon over its socket: calls/s and latency",
		Long: `Load a hostpass daemon over its socket and print one summary line:
calls, errors, rate of successful calls, and their p50 and p99 latency.

--op container times what dockerd calls to attach a container,
CreateEndpoint then Join, as one call; after the run, untimed, bench leaves
and deletes every endpoint it created (create-endpoint too), as dockerd
does when containers go, so that the daemon does not carry them into the
next run. --op lifecycle times a container's whole life, CreateEndpoint,
Join, Leave and DeleteEndpoint, as one call: the daemon then holds no
endpoint between calls, the steady state to measure its memory in.

With --baseline, bench also serves a do-nothing driver (go-plugins-helpers'
handler with empty methods) on a socket of its own, runs the same load
against it and against --socket in interleaved rounds, and prints both rates
and their ratio per round and overall.

With --fsync-dir (the audit log's folder) each round also loads a floor
driver: the no-op driver, except that each CreateEndpoint and each Join
appends a 512-byte line to a file in that folder and fsyncs it before
answering, one at a time. It is what a driver that only makes its calls
durable costs, request path included; bench prints hostpass's rate as a
fraction of it per round and overall. It also measures one bare append and
fsync there and prints the floor that two fsyncs per container set; at
--clients 1 with --op container, hostpass's rate as a fraction of it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			if o.serveNop != "" {
				return serveNoop(o.serveNop, o.fsyncDir)
			}
			if err := o.Check(flags.Changed("duration"), flags.Changed("calls")); err != nil {
				return refused(err)
			}
			if err := o.check(flags); err != nil {
				return refused(err)
			}
			if o.baseline {
				return runBaseline(cmd, o)
			}
			return runBench(cmd, o)
		},
	}
	flags := cmd.Flags()
	flags.SortFlags = false
	flags.StringVar(&o.Socket, "socket", "", "unix socket of the hostpass daemon to load (required)")
	flags.IntVar(&o.Clients, "clients", bench.DefaultClients, fmt.Sprintf("concurrent clients, each with its own keep-alive connection (1 to %d)", bench.MaxClients))
	flags.DurationVar(&o.Duration, "duration", bench.DefaultDuration, "how long to run; not with --calls")
	flags.IntVar(&o.Calls, "calls", 0, "total calls to make, shared by the clients; not with --duration")
	flags.StringVar(&o.Op, "op", "join", "operation: "+strings.Join(bench.Ops, ", "))
	flags.StringVar(&o.Network, "network", "", "network ID to call on (default: create a network of its own, delete it at the end)")
	flags.BoolVar(&o.json, "json", false, "print the summary as a JSON object")
	flags.BoolVar(&o.baseline, "baseline", false, "also load a no-op driver served by bench, in interleaved rounds, and print the ratio")
	flags.IntVar(&o.rounds, "rounds", 3, "with --baseline: interleaved rounds (1 to 100), each side --duration long")
	flags.StringVar(&o.fsyncDir, "fsync-dir", "", "with --baseline: the audit log's folder, to load a floor driver that fsyncs there and measure the fsync floor")
	flags.StringVar(&o.noop, "noop", "child", "with --baseline: where the no-op driver runs: child (a process of its own, as hostpass is) or in-process")
	flags.StringVar(&o.serveNop, "serve-noop", "", "serve the no-op driver on this unix socket until interrupted (what --noop child runs); the floor driver with --fsync-dir")
	flags.MarkHidden("serve-noop")
	return cmd
}

func runBench(cmd *cobra.Command, o benchOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	res, err := bench.Run(ctx, o.Options)
	if err != nil {
		return failed(err)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "hostpass bench: interrupted; the summary covers the calls made so far")
	}
	if o.json {
		b, _ := json.Marshal(res.Summary)
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintln(stdout, res.Summary)
	}
	if res.Cleanup != nil {
		fmt.Fprintf(stderr, "hostpass bench: %v\n", res.Cleanup)
	}
	if res.Errors > 0 {
		return failed(fmt.Errorf("%d of %d calls failed; first: %v", res.Errors, res.Calls, res.FirstErr))
	}
	return nil
}

// fsyncSamples is how many appends the fsync floor averages over.
const fsyncSamples = 200

func runBaseline(cmd *cobra.Command, o benchOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stdout := cmd.OutOrStdout()
	// Before the no-op side starts: a dead --socket would otherwise be
	// found only after the first no-op run, --duration later.
	if err := bench.Probe(ctx, o.Socket); err != nil {
		return failed(err)
	}
	dir, err := os.MkdirTemp("", "hostpass-bench-")
	if err != nil {
		return failed(err)
	}
	defer os.RemoveAll(dir)
	noopSocket := filepath.Join(dir, "noop.sock")
	startNoop := bench.ServeNoop
	if o.noop == "child" {
		stderr := childStderr(cmd.ErrOrStderr())
		startNoop = func(socket, fsyncDir string) (func(), error) {
			return startNoopChild(stderr, socket, fsyncDir)
		}
	}
	stopNoop, err := startNoop(noopSocket, "")
	if err != nil {
		return failed(err)
	}
	defer stopNoop()
	var floor time.Duration
	var floorSocket string
	if o.fsyncDir != "" {
		if floor, err = bench.FsyncFloor(o.fsyncDir, fsyncSamples); err != nil {
			return failed(err)
		}
		floorSocket = filepath.Join(dir, "floor.sock")
		stopFloor, err := startNoop(floorSocket, o.fsyncDir)
		if err != nil {
			return failed(err)
		}
		defer stopFloor()
	}
	order := "no-op driver (" + o.noop + ") first"
	if floorSocket != "" {
		order = "no-op driver, floor driver (" + o.noop + "), then hostpass"
	}
	fmt.Fprintf(stdout, "op=%s clients=%d: %d rounds, each side %s, %s\n", o.Op, o.Clients, o.rounds, o.Duration, order)
	rounds, err := bench.Compare(ctx, o.Options, noopSocket, floorSocket, o.rounds, func(i int, r bench.Round) {
		fmt.Fprintf(stdout, "round %d: %s\n", i, roundLine(r))
	})
	if len(rounds) > 0 {
		fmt.Fprintf(stdout, "overall: %s\n", overallLine(bench.Overall(rounds)))
	}
	if floor > 0 {
		perContainer := bench.FsyncsPerContainer * floor
		floorRate := float64(time.Second) / float64(perContainer)
		fmt.Fprintf(stdout, "fsync floor: %.3fms per append+fsync in %s, %d per container: %.1f containers/s at 1 client\n",
			float64(floor)/float64(time.Millisecond), o.fsyncDir, bench.FsyncsPerContainer, floorRate)
		if len(rounds) > 0 && o.Clients == 1 && o.Op == "container" {
			h := bench.Overall(rounds).Hostpass.Rate
			fmt.Fprintf(stdout, "hostpass at 1 client: %.1f/s = %.3fx the fsync floor\n", h, h/floorRate)
		}
	}
	if floorSocket != "" && len(rounds) > 0 {
		all := bench.Overall(rounds)
		lo, hi := floorRange(rounds)
		// The goal is stated in time per container: hostpass within 1.15x of
		// the floor's, that is a rate ratio of 0.87 or more.
		fmt.Fprintf(stdout, "floor driver at %d %s: %.1f/s; hostpass %.1f/s = %.3fx (rounds %.3f-%.3fx), time per call %.3fx the floor's\n",
			o.Clients, plural(o.Clients, "client", "clients"), all.Floor.Rate, all.Hostpass.Rate, all.FloorRatio(), lo, hi, ratioInv(all.FloorRatio()))
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "hostpass bench: interrupted; the lines above cover the rounds completed")
			return nil
		}
		return failed(err)
	}
	return nil
}

func roundLine(r bench.Round) string {
	s := fmt.Sprintf("no-op %.1f/s (p50 %.3fms)  hostpass %.1f/s (p50 %.3fms)  ratio %.3fx",
		r.Noop.Rate, r.Noop.P50Ms, r.Hostpass.Rate, r.Hostpass.P50Ms, r.Ratio())
	if r.Floor.Calls > 0 {
		s += fmt.Sprintf("  floor %.1f/s (p50 %.3fms)  hostpass/floor %.3fx", r.Floor.Rate, r.Floor.P50Ms, r.FloorRatio())
	}
	return s
}

// overallLine has no percentiles: the rounds' latencies are not kept.
func overallLine(r bench.Round) string {
	s := fmt.Sprintf("no-op %.1f/s  hostpass %.1f/s  ratio %.3fx", r.Noop.Rate, r.Hostpass.Rate, r.Ratio())
	if r.Floor.Calls > 0 {
		s += fmt.Sprintf("  floor %.1f/s  hostpass/floor %.3fx", r.Floor.Rate, r.FloorRatio())
	}
	return s
}

// floorRange is the lowest and highest hostpass/floor ratio of the rounds.
func floorRange(rounds []bench.Round) (lo, hi float64) {
	lo, hi = rounds[0].FloorRatio(), rounds[0].FloorRatio()
	for _, r := range rounds[1:] {
		lo, hi = min(lo, r.FloorRatio()), max(hi, r.FloorRatio())
	}
	return lo, hi
}

func ratioInv(r float64) float64 {
	if r == 0 {
		return 0
	}
	return 1 / r
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// noopCommand is the child --noop child runs; a variable so that tests,
// whose executable is not hostpass, can run a helper of theirs instead.
// fsyncDir set: the floor driver, fsyncing there.
var noopCommand = func(socket, fsyncDir string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"bench", "--serve-noop", socket}
	if fsyncDir != "" {
		args = append(args, "--fsync-dir", fsyncDir)
	}
	return exec.Command(self, args...), nil
}

// serveNoop is the child's side of --noop child: serve until signalled.
func serveNoop(socket, fsyncDir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopNoop, err := bench.ServeNoop(socket, fsyncDir)
	if err != nil {
		return failed(err)
	}
	<-ctx.Done()
	stopNoop()
	return nil
}

// startNoopChild runs this binary's hidden `bench --serve-noop socket` and
// waits for the socket, so the no-op driver is a process of its own, as the
// daemon is: both sides pay the same cross-process wakeups. A child that
// exits before serving is reported at once, its stderr on stderr; the
// child gets SIGTERM if bench dies, even by SIGKILL (Linux).
func startNoopChild(stderr io.Writer, socket, fsyncDir string) (func(), error) {
	child, err := noopCommand(socket, fsyncDir)
	if err != nil {
		return nil, fmt.Errorf("starting the no-op driver: %w", err)
	}
	child.Stderr = stderr
	dieWithParent(child)
	if err := child.Start(); err != nil {
		return nil, fmt.Errorf("starting the no-op driver: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	stop := func() { child.Process.Signal(syscall.SIGTERM); <-exited }
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	for {
		if _, err := os.Stat(socket); err == nil {
			return stop, nil
		}
		select {
		case err := <-exited:
			if err == nil {
				err = errors.New("exit status 0")
			}
			return nil, fmt.Errorf("starting the no-op driver: %s exited before serving %s: %w", child.Path, socket, err)
		case <-deadline:
			stop()
			return nil, fmt.Errorf("starting the no-op driver: %s did not appear within 5s", socket)
		case <-tick.C:
		}
	}
}

// childStderr is where the no-op children write: stderr itself when it is
// a file (the child writes it directly), else stderr behind a lock, since
// exec copies each child's output from a goroutine of its own.
func childStderr(w io.Writer) io.Writer {
	if _, ok := w.(*os.File); ok {
		return w
	}
	return &lockedWriter{w: w}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/bench"
)

type benchOptions struct {
	bench.Options
	json bool
}

func newBenchCommand() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench --socket PATH [flags]",
		Short: "Load the daemon over its socket: calls/s and latency",
		Long: `Load a hostpass daemon over its socket and print one summary line:
calls, errors, rate of successful calls, and their p50 and p99 latency.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			if err := o.Check(flags.Changed("duration"), flags.Changed("calls")); err != nil {
				return refused(err)
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

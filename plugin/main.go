// Command hostpass is the hostpass daemon: a Docker network plugin whose
// driver mirrors Docker's host driver and audits every lifecycle call.
//
// This package is the command line only, on cobra as docker/cli is: one file
// per command, each with an options struct and a newXCommand function. The
// daemon's wiring is package daemon; the load generator is package bench.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes: 0 done, 1 the command failed, 2 misuse (an unknown command or
// flag, a wrong argument count, a bad setting).
const (
	exitFailed = 1
	exitUsage  = 2
)

// exitError ends a command with code, after printing err (if any) after the
// command's name. Any other error from a command is misuse: it is printed
// with a pointer to --help, and exits 2.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// failed is a command that ran and failed: exit 1.
func failed(err error) error { return &exitError{exitFailed, err} }

// refused is a bad setting, found once the flags are parsed: exit 2,
// printed as it is, without the pointer to --help.
func refused(err error) error { return &exitError{exitUsage, err} }

func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "%s: %v\nSee '%s --help'.\n", cmd.CommandPath(), err, cmd.CommandPath())
	return exitUsage
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hostpass",
		Short: "a Docker network plugin that audits host-mode networking",
		Long: `hostpass: a Docker network plugin that audits host-mode networking.

Its driver mirrors Docker's host driver, and every lifecycle call leaves a
hash-chained audit record, fsynced before Docker hears "ok".`,
		Version:       fmt.Sprintf("%s (commit %s)", version, commit),
		Args:          cobra.NoArgs,
		RunE:          usageOnly,
		SilenceErrors: true, // run prints them, with the right exit code
		SilenceUsage:  true,
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetVersionTemplate("hostpass {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return err })
	cmd.AddCommand(daemonCommands()...)
	cmd.AddCommand(newAuditCommand(), newBenchCommand(), newVersionCommand())
	// cobra's own `completion bash|zsh|fish|powershell`, made here rather
	// than on Execute so that an unknown shell is misuse like any other. It
	// takes its output now: SetOut comes first.
	cmd.InitDefaultCompletionCmd()
	for _, c := range cmd.Commands() {
		if c.Name() == "completion" {
			c.RunE = usageOnly
		}
	}
	return cmd
}

// usageOnly is a command group called without a command: its help, on
// stderr, and exit 2.
func usageOnly(cmd *cobra.Command, _ []string) error {
	cmd.SetOut(cmd.ErrOrStderr())
	cmd.Usage()
	return &exitError{code: exitUsage}
}

// noArgs refuses arguments to a command that takes flags only.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q; it takes flags only", args[0])
	}
	return nil
}

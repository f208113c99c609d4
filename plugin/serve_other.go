//go:build !linux

package main

import "github.com/spf13/cobra"

// daemonCommands: none here. The daemon needs Linux (serve.go); the audit
// commands, bench and version build everywhere, so that an auditor can
// verify a log on a laptop.
func daemonCommands() []*cobra.Command { return nil }

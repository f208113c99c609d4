package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/audit"
)

func newAuditKeygenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen FILE",
		Short: "Write a new initial sealing key to FILE (never overwritten)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeygen(cmd, args[0])
		},
	}
}

func runKeygen(cmd *cobra.Command, file string) error {
	if err := audit.NewKeyFile(file); err != nil {
		return failed(err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), `wrote a new initial sealing key to %[1]s (mode 0600).
Install a copy as the daemon's key file, then move %[1]s off this host (it verifies every seal):
  install -m 0600 %[1]s /var/lib/hostpass/seal.key
  hostpass serve --seal-key /var/lib/hostpass/seal.key      (or HOSTPASS_SEAL_KEY)
The daemon's copy evolves and overwrites itself; only this initial copy can check the whole log:
  hostpass audit verify --key %[1]s /var/log/hostpass
`, file)
	return nil
}

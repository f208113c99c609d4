package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/audit"
)

type keygenOptions struct {
	from  string // initial key file to step from; empty: a new initial key
	epoch uint64
	sign  bool   // a signing key (FILE and FILE.pub) instead of a sealing key
	host  string // the signing key's host name; empty: os.Hostname
}

func newAuditKeygenCommand() *cobra.Command {
	var o keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen [--sign [--host NAME] | --from INITIAL-KEY-FILE --epoch N] FILE",
		Short: "Write a new signing or initial sealing key, or step a sealing key to epoch N (never overwrites)",
		Long: `Write a new initial sealing key to FILE (never overwritten).

With --sign, write instead a new signing key: FILE (0600, the daemon's key, for serve --sign-key)
and FILE.pub (the auditor's verifier key, public). The key's origin names the host (--host, by
default this host's name) and a new random log ID.

With --from and --epoch, write instead the key of epoch N, stepped forward from the initial key:
the daemon takes a key file at most one epoch behind its log, so this is how a damaged daemon key
file is restored for a log in epoch N (the epoch of its last record; docs/audit.md, "A damaged
key file").`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.sign {
				if o.from != "" || cmd.Flags().Changed("epoch") {
					return refused(errors.New("--sign makes a new signing key: it takes neither --from nor --epoch, which step a sealing key"))
				}
				return runSignKeygen(cmd, o, args[0])
			}
			if cmd.Flags().Changed("host") {
				return refused(errors.New("--host names a signing key's host: it needs --sign"))
			}
			if o.from != "" {
				return runKeyStep(cmd, o, args[0])
			}
			if cmd.Flags().Changed("epoch") {
				return refused(errors.New("--epoch needs --from, the initial key file to step from"))
			}
			return runKeygen(cmd, args[0])
		},
	}
	cmd.Flags().StringVar(&o.from, "from", "", "initial key `FILE` to step forward from (with --epoch)")
	cmd.Flags().Uint64Var(&o.epoch, "epoch", 0, "the epoch whose key to write (with --from)")
	cmd.Flags().BoolVar(&o.sign, "sign", false, "write a new signing key to FILE and its verifier key to FILE.pub")
	cmd.Flags().StringVar(&o.host, "host", "", "with --sign: the host `NAME` in the key's origin (default: this host's name)")
	return cmd
}

func runKeyStep(cmd *cobra.Command, o keygenOptions, file string) error {
	if err := audit.StepKeyFile(o.from, file, o.epoch); err != nil {
		return failed(err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), `wrote the key of epoch %d, stepped from %s, to %s (mode 0600).
Whoever holds it can seal epoch %d and later: install it as the daemon's key file (its --seal-key; for
the managed plugin, HOSTPASS_SEAL_KEY, /var/log/hostpass/state/seal.key on the host by default), then
shred this copy:
  install -m 0600 %s DAEMON-KEY-FILE && shred -u %s
`, o.epoch, o.from, file, o.epoch, file, file)
	return nil
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

func runSignKeygen(cmd *cobra.Command, o keygenOptions, file string) error {
	host := o.host
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return failed(fmt.Errorf("reading the host name for the key's origin: %w; give one with --host", err))
		}
		host = h
	}
	vkey, err := audit.NewSignKeyFile(file, host)
	if err != nil {
		return refused(err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), `wrote a new signing key to %[1]s (mode 0600) and its verifier key to %[1]s.pub:
  %[2]s
Run the daemon with it; it steps the key each epoch and wipes the old one:
  hostpass serve --sign-key %[1]s      (or HOSTPASS_SIGN_KEY)
Give %[1]s.pub to the auditors (it is public and can sign nothing); they check the log with
  hostpass audit verify --pubkey %[1]s.pub /var/log/hostpass
`, file, vkey)
	return nil
}

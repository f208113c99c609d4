package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/audit"
)

type proveOptions struct {
	container string
	seq       uint64
	out       string
}

func newAuditProveCommand() *cobra.Command {
	var o proveOptions
	cmd := &cobra.Command{
		Use:   "prove (--container NAME|ID | --seq N) [-o FILE] [FILE... | DIR]",
		Short: "Write a proof bundle of a container's records, checkable offline",
		Long: `Write a proof bundle: a container's records (its endpoints' create, join,
attribute, leave and delete, and its host.join and host.leave), or the one
record --seq names, each with its inclusion proof in the log's Merkle tree;
the first signed checkpoint after each (signed by the key of the record's
own epoch); and the key certifications from epoch 0 to the last checkpoint's
epoch. "hostpass audit check-proof
--pubkey FILE.pub BUNDLE" checks it anywhere, without the log.

A record written after the log's last checkpoint cannot be proven yet: the
next checkpoint comes within --checkpoint-interval while records arrive,
or --heartbeat when idle.`,
		RunE: func(cmd *cobra.Command, args []string) error { return runProve(cmd, o, args) },
	}
	flags := cmd.Flags()
	flags.StringVar(&o.container, "container", "", "the container's `NAME or ID` (12 hex digits or more)")
	flags.Uint64Var(&o.seq, "seq", 0, "the seq `N` of one record to prove")
	flags.StringVarP(&o.out, "output", "o", "", "write the bundle to `FILE` (never overwritten), not to standard output")
	return cmd
}

func runProve(cmd *cobra.Command, o proveOptions, args []string) error {
	if (o.container == "") == (o.seq == 0) {
		return refused(errors.New("give --container NAME|ID or --seq N: a bundle proves one container's records or one record"))
	}
	files, err := logFiles(args)
	if err != nil {
		return err
	}
	b, err := audit.Prove(files, audit.ProveQuery{Container: o.container, Seq: o.seq})
	if err != nil {
		return failed(err)
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return failed(err)
	}
	data = append(data, '\n')
	if o.out == "" {
		_, err := cmd.OutOrStdout().Write(data)
		return err
	}
	if err := writeNew(o.out, data); err != nil {
		return failed(err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d record(s), seq %d to %d, each under the first checkpoint after it (%d checkpoint(s), the last at seq %d); check it with: hostpass audit check-proof --pubkey FILE.pub %s\n",
		o.out, len(b.Records), b.Records[0].Leaf+1, b.Records[len(b.Records)-1].Leaf+1, len(b.Checkpoints), b.Checkpoints[len(b.Checkpoints)-1].Seq, o.out)
	return nil
}

// writeNew writes data to a file that must not exist yet.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("bundle not written: %w (a bundle never overwrites a file)", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("bundle not written to %s: %w", path, err)
	}
	return nil
}

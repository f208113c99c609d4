package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/audit"
)

func newAuditCheckProofCommand() *cobra.Command {
	var pubFile string
	cmd := &cobra.Command{
		Use:   "check-proof --pubkey FILE.pub BUNDLE",
		Short: "Check a proof bundle offline, with the log's verifier key alone",
		Long: `Check a proof bundle written by "hostpass audit prove", offline: the key
certifications from FILE.pub on, each checkpoint's signature, and every
record's inclusion proof under a checkpoint signed by its own epoch's key. Exit 0 and what the bundle
proves (the records, and each stretch in host mode or attached to a hostpass
network, from T1 to T2 with their seqs); exit 1 and "FAIL:" naming what is
wrong. BUNDLE - reads standard input.

A bundle proves that its records are in the log; it cannot show that the
log holds no other record of the container: verify the log for that.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runCheckProof(cmd, pubFile, args[0]) },
	}
	cmd.Flags().StringVar(&pubFile, "pubkey", "", "the log's verifier key `FILE.pub` (made by hostpass audit keygen --sign)")
	return cmd
}

func runCheckProof(cmd *cobra.Command, pubFile, path string) error {
	if pubFile == "" {
		return refused(errors.New("--pubkey FILE.pub is required: a bundle is checked against the log's verifier key, from elsewhere than the bundle"))
	}
	pub, err := audit.ReadSignPub(pubFile)
	if err != nil {
		return refused(err)
	}
	var r io.Reader = cmd.InOrStdin()
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return failed(err)
		}
		defer f.Close()
		r = f
	}
	stdout := cmd.OutOrStdout()
	fail := func(err error) error {
		fmt.Fprintf(stdout, "FAIL: %s: %v\n", path, err)
		return &exitError{code: exitFailed}
	}
	b, err := audit.ReadBundle(r)
	if err != nil {
		return fail(err)
	}
	p, err := audit.CheckBundle(b, pub)
	if err != nil {
		return fail(err)
	}
	last := p.Checkpoints[len(p.Checkpoints)-1]
	fmt.Fprintf(stdout, "ok: %d record(s) of log %s (host %s), each proven under a checkpoint signed by its own epoch's key; %d checkpoint(s), the last of %d records (seq %d) signed by %s, a key FILE.pub leads to through %d certification(s)\n",
		len(p.Records), p.Origin, p.Host, len(p.Checkpoints), last.Size, last.Seq, last.Signer, last.Epoch)
	for i, rec := range p.Records {
		c := p.Checkpoints[b.Records[i].Checkpoint]
		fmt.Fprintf(stdout, "  seq %d  %s  %s  %s%s  (checkpoint seq %d, epoch %d)\n", rec.Seq, rec.Time.Format(time.RFC3339Nano), rec.Event, rec.Outcome, recordText(rec), c.Seq, c.Epoch)
	}
	for _, s := range p.Sessions() {
		fmt.Fprintln(stdout, s)
	}
	return nil
}

// recordText names what a proven record is about.
func recordText(r audit.Record) string {
	s := ""
	if r.NetworkID != "" {
		s += "  network " + shortID(r.NetworkID)
	}
	if r.EndpointID != "" {
		s += "  endpoint " + shortID(r.EndpointID)
	}
	if c := r.Container; c != nil {
		s += "  container " + shortID(c.ID)
		if c.Name != "" {
			s += " (" + c.Name + ")"
		}
	}
	return s
}

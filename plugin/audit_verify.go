package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/audit"
)

// exitUnverified: the chain holds, but the log is sealed and no key was
// given, so its content was not checked (without the key, anyone can edit a
// sealed record: its hash is the seal).
const exitUnverified = 3

type verifyOptions struct {
	keyFile   string
	chainOnly bool
	anchors   anchors
	start     anchors
}

func newAuditVerifyCommand() *cobra.Command {
	o := verifyOptions{anchors: anchors{}, start: anchors{}}
	cmd := &cobra.Command{
		Use:   "verify [--key INITIAL-KEY-FILE | --chain-only] [--anchor SEQ:HASH]... [--start SEQ:HASH] [FILE... | DIR]",
		Short: "Check the audit log's chain and seals",
		Long: `Check the audit log's chain and seals.

Exit 0 and a summary when the log verifies; exit 1 and "FAIL:" naming the
file, line, seq and what is wrong when it does not. A sealed log checked
without --key exits 3, "UNVERIFIED:": its seals are its hashes, so without
the key nothing shows an edited record; --chain-only accepts that check.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, o, args)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.keyFile, "key", "", "initial sealing key `FILE` (made by hostpass audit keygen, kept off the host): also check every seal")
	flags.BoolVar(&o.chainOnly, "chain-only", false, "on a sealed log without --key, check seq and prev alone and exit 0: the seals, and so the records' content, are NOT checked")
	flags.Var(o.anchors, "anchor", "SEQ:HASH of a record known from elsewhere (a syslog collector, an earlier verify); repeatable")
	flags.Var(o.start, "start", "SEQ:HASH of the log's first record, known from elsewhere: accept a log that does not start at its genesis record (its oldest files were removed)")
	return cmd
}

func runVerify(cmd *cobra.Command, o verifyOptions, args []string) error {
	vo := audit.VerifyOptions{Anchors: o.anchors}
	if len(o.start) > 1 {
		return refused(errors.New("--start given more than once; a log has one start"))
	}
	for seq, h := range o.start {
		vo.Start = &audit.Anchor{Seq: seq, Hash: h}
	}
	if o.keyFile != "" && o.chainOnly {
		return refused(errors.New("--chain-only and --key: --key checks the seals, --chain-only skips them; give one"))
	}
	if o.keyFile != "" {
		epoch, key, err := audit.ReadKeyFile(o.keyFile)
		if err != nil {
			return refused(err)
		}
		if epoch != 0 {
			return refused(fmt.Errorf("%s holds the key of epoch %d; verify needs the initial key (epoch 0), kept off the host", o.keyFile, epoch))
		}
		vo.Key = key
	}
	files, err := logFiles(args)
	if err != nil {
		return err
	}
	stdout := cmd.OutOrStdout()
	sum, err := audit.Verify(files, vo)
	var p *audit.Problem
	if errors.As(err, &p) {
		fmt.Fprintf(stdout, "FAIL: %s\n", p)
		return &exitError{code: exitFailed}
	}
	if err != nil {
		return failed(err)
	}
	seals := "plain SHA-256 chain (unsealed)"
	switch {
	case sum.SealsChecked:
		seals = fmt.Sprintf("seals verified, epochs %d-%d", sum.FirstEpoch, sum.LastEpoch)
	case sum.Sealed:
		seals = "sealed, seals NOT checked (--chain-only): content unverified"
	}
	if sum.StartGiven {
		epoch := ""
		if sum.Sealed {
			epoch = fmt.Sprintf(" (epoch %d)", sum.FirstEpoch)
		}
		seals += fmt.Sprintf("; starts at seq %d%s as you said; records before it were not checked", sum.FirstSeq, epoch)
	}
	torn := ""
	if sum.TornTails > 0 {
		torn = fmt.Sprintf("; %d torn tail(s) set aside after crashes (audit.torn_tail records)", sum.TornTails)
	}
	if sum.Sealed && !sum.SealsChecked && !o.chainOnly {
		fmt.Fprintf(stdout, "UNVERIFIED: %d records in %d file(s), seq %d-%d: the log is sealed and seals NOT checked: content unverified (a sealed record's hash is its seal, so without the key an edited record goes unseen); pass --key INITIAL-KEY-FILE, or --chain-only to accept a check of seq and prev alone\n",
			sum.Records, sum.Files, sum.FirstSeq, sum.LastSeq)
		return &exitError{code: exitUnverified}
	}
	fmt.Fprintf(stdout, "ok: %d records in %d file(s), seq %d-%d, %s to %s, chain intact, %s%s; last %d:%s\n",
		sum.Records, sum.Files, sum.FirstSeq, sum.LastSeq, sum.First.Format(time.RFC3339Nano), sum.Last.Format(time.RFC3339Nano),
		seals, torn, sum.LastSeq, sum.LastHash)
	return nil
}

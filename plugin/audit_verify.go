package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/audit"
)

type verifyOptions struct {
	keyFile string
	anchors anchors
}

func newAuditVerifyCommand() *cobra.Command {
	o := verifyOptions{anchors: anchors{}}
	cmd := &cobra.Command{
		Use:   "verify [--key INITIAL-KEY-FILE] [--anchor SEQ:HASH]... [FILE... | DIR]",
		Short: "Check the audit log's chain and seals",
		Long: `Check the audit log's chain and seals.

Exit 0 and a summary when the log verifies; exit 1 and "FAIL:" naming the
file, line, seq and what is wrong when it does not.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, o, args)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.keyFile, "key", "", "initial sealing key file (from `hostpass audit keygen`): also check every seal")
	flags.Var(o.anchors, "anchor", "SEQ:HASH of a record known from elsewhere (a syslog collector, an earlier verify); repeatable")
	return cmd
}

func runVerify(cmd *cobra.Command, o verifyOptions, args []string) error {
	vo := audit.VerifyOptions{Anchors: o.anchors}
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
		return refused(err)
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
		seals = "sealed, seals NOT checked: pass --key INITIAL-KEY-FILE"
	}
	torn := ""
	if sum.TornTails > 0 {
		torn = fmt.Sprintf("; %d torn tail(s) set aside after crashes (audit.torn_tail records)", sum.TornTails)
	}
	fmt.Fprintf(stdout, "ok: %d records in %d file(s), seq %d-%d, %s to %s, chain intact, %s%s; last %d:%s\n",
		sum.Records, sum.Files, sum.FirstSeq, sum.LastSeq, sum.First.Format(time.RFC3339Nano), sum.Last.Format(time.RFC3339Nano),
		seals, torn, sum.LastSeq, sum.LastHash)
	return nil
}

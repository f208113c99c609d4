package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/audit"
)

// exitUnverified: the chain holds, but the log is sealed and no key was
// given, so its content was not checked (without the key, anyone can edit a
// sealed record: its hash is the seal); or it is signed and does not start
// at seq 1, so no checkpoint's root could be checked.
const exitUnverified = 3

type verifyOptions struct {
	keyFile     string
	pubFile     string
	pubFiles    []string // every --pubkey: several for several hosts' logs
	checkpoints []string
	heartbeat   time.Duration
	chainOnly   bool
	noProgress  bool
	anchors     anchors
	start       anchors
}

func newAuditVerifyCommand() *cobra.Command {
	o := verifyOptions{anchors: anchors{}, start: anchors{}}
	cmd := &cobra.Command{
		Use:   "verify [--pubkey FILE.pub [--checkpoint FILE]... | --key INITIAL-KEY-FILE | --chain-only] [--anchor SEQ:HASH]... [--start SEQ:HASH] [FILE... | DIR | DIR DIR...]",
		Short: "Check the audit log's chain, signatures and seals",
		Long: `Check the audit log's chain, signatures and seals.

Exit 0 and a summary when the log verifies; exit 1 and "FAIL:" naming the
file, line, seq and what is wrong when it does not. A signed or sealed log
checked without --pubkey or --key exits 3, "UNVERIFIED:": its hashes are
plain, so without the key nothing shows an edited record; --chain-only
accepts that check. A signed log given from a later seq (--start) exits 3
too: its checkpoints' roots are trees of every record from seq 1.

A signed log (serve --sign-key) is checked with FILE.pub alone, the verifier
key "hostpass audit keygen --sign FILE" wrote: the key certifications of
every epoch from FILE.pub on, and every checkpoint against the records
before it. --checkpoint FILE proves that the log still holds everything the
checkpoints collected off the host committed to: a checkpoint larger than
the log is a cut tail, one whose root disagrees is rewritten history. Each
stretch longer than --heartbeat with no checkpoint while the daemon ran is
listed on a "GAP:" line; it does not fail the log.

Several DIRs are several hosts' logs, each verified on its own as above.
--pubkey and --checkpoint are then repeatable: each key and each collected
checkpoint goes to the log whose origin (hostpass/<host>/<log ID>) it names,
so one collector's file may hold every host's checkpoints; a key or a
checkpoint of no log given is refused. A log no key is for is checked as
without --pubkey (--chain-only applies to those alone). Every line names its
host ("ok: host node-1: ..."); the last line sums up: exit 0 when every log
verifies, 1 naming the hosts that failed, 3 naming those not checked in
full.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, o, args)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.keyFile, "key", "", "initial sealing key `FILE` (made by hostpass audit keygen, kept off the host): also check every seal")
	flags.StringArrayVar(&o.pubFiles, "pubkey", nil, "verifier key `FILE.pub` (made by hostpass audit keygen --sign): check a signed log's key certifications and checkpoints; with several DIRs, repeatable, each matched to its log by origin")
	flags.StringArrayVar(&o.checkpoints, "checkpoint", nil, "`FILE` of checkpoints collected off the host (one signed note, or lines holding audit.checkpoint records: the log's own, or a syslog collector's): prove the log extends each; repeatable; needs --pubkey")
	flags.DurationVar(&o.heartbeat, "heartbeat", 5*time.Minute, "with --pubkey, list each stretch of a running daemon longer than this `D` with no checkpoint (serve's --heartbeat); 0: none")
	flags.BoolVar(&o.chainOnly, "chain-only", false, "on a sealed log without --key, check seq and prev alone and exit 0: the seals, and so the records' content, are NOT checked")
	flags.BoolVar(&o.noProgress, "no-progress", false, noProgressUsage)
	flags.Var(o.anchors, "anchor", "SEQ:HASH of a record known from elsewhere (a syslog collector, an earlier verify); repeatable")
	flags.Var(o.start, "start", "SEQ:HASH of the log's first record, known from elsewhere: accept a log that does not start at its genesis record (its oldest files were removed)")
	return cmd
}

func runVerify(cmd *cobra.Command, o verifyOptions, args []string) error {
	if len(o.pubFiles) > 0 {
		o.pubFile = o.pubFiles[len(o.pubFiles)-1]
	}
	if fleet, err := fleetArgs(args); err != nil || fleet {
		if err != nil {
			return err
		}
		return runVerifyFleet(cmd, o, args)
	}
	if len(o.pubFiles) > 1 {
		return refused(errors.New("--pubkey given more than once for one log; several keys are for several hosts' logs, each named by its DIR"))
	}
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
	if o.pubFile != "" && (o.keyFile != "" || o.chainOnly) {
		return refused(errors.New("--pubkey with --key or --chain-only: a log is signed (--pubkey) or sealed (--key), and --chain-only skips both; give one"))
	}
	if len(o.checkpoints) > 0 && o.pubFile == "" {
		return refused(errors.New("--checkpoint without --pubkey: a collected checkpoint is opened with the log's key chain, which starts from FILE.pub"))
	}
	if o.pubFile != "" {
		pub, err := audit.ReadSignPub(o.pubFile)
		if err != nil {
			return refused(err)
		}
		vo.Pub, vo.Heartbeat = pub, o.heartbeat
		for _, f := range o.checkpoints {
			cs, err := audit.ReadCheckpoints(f)
			if err != nil {
				return refused(err)
			}
			for i := range cs {
				cs[i].Sender = "" // one log's verify says what it always said; a fleet's names senders
			}
			vo.Checkpoints = append(vo.Checkpoints, cs...)
		}
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
	_, err = verifyLog(cmd, cmd.OutOrStdout(), o, vo, files)
	return err
}

// verifyLog verifies one log and prints what it found to stdout. The
// summary tells a fleet verify what was checked.
func verifyLog(cmd *cobra.Command, stdout io.Writer, o verifyOptions, vo audit.VerifyOptions, files []string) (audit.Summary, error) {
	meter, endMeter := newMeter(cmd, o.noProgress, files, 1)
	if meter != nil {
		vo.Progress = meter.Add
	}
	sum, err := audit.Verify(files, vo)
	endMeter() // before anything is printed
	var p *audit.Problem
	if errors.As(err, &p) {
		fmt.Fprintf(stdout, "FAIL: %s\n", p)
		return audit.Summary{}, &exitError{code: exitFailed}
	}
	if err != nil {
		return audit.Summary{}, failed(err)
	}
	seals := "plain SHA-256 chain (unsealed)"
	switch {
	case sum.Signed:
		seals = signedText(sum)
	case sum.SealsChecked:
		seals = fmt.Sprintf("seals verified, epochs %d-%d", sum.FirstEpoch, sum.LastEpoch)
	case sum.Checkpoints > 0:
		seals = fmt.Sprintf("signed (%d audit.checkpoint records), hashes and signatures NOT checked (--chain-only): content unverified", sum.Checkpoints)
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
	if sum.Checkpoints > 0 && !sum.Signed && !o.chainOnly {
		fmt.Fprintf(stdout, "UNVERIFIED: %d records in %d file(s), seq %d-%d: the log is signed (%d audit.checkpoint records) and NOT checked: content unverified (its hashes are plain, so without the checkpoints' keys an edited record goes unseen); pass --pubkey FILE.pub, or --chain-only to accept a check of seq and prev alone\n",
			sum.Records, sum.Files, sum.FirstSeq, sum.LastSeq, sum.Checkpoints)
		return sum, &exitError{code: exitUnverified}
	}
	if sum.Sealed && !sum.SealsChecked && !o.chainOnly {
		fmt.Fprintf(stdout, "UNVERIFIED: %d records in %d file(s), seq %d-%d: the log is sealed and seals NOT checked: content unverified (a sealed record's hash is its seal, so without the key an edited record goes unseen); pass --key INITIAL-KEY-FILE, or --chain-only to accept a check of seq and prev alone\n",
			sum.Records, sum.Files, sum.FirstSeq, sum.LastSeq)
		return sum, &exitError{code: exitUnverified}
	}
	if sum.Signed && !sum.RootsChecked {
		fmt.Fprintf(stdout, "UNVERIFIED: %d records in %d file(s), seq %d-%d: the log is signed and starts at seq %d (--start), so its checkpoints' roots were NOT checked: content unverified (a checkpoint's root is the tree of every record from seq 1, so whoever edits a record and rebuilds the chain after it goes unseen); checked: seq, prev and each record's hash from seq %d, %d key certification(s) from FILE.pub, and %d checkpoints' signatures and sizes; give the whole log from seq 1 (every file since the genesis record) to check the roots\n",
			sum.Records, sum.Files, sum.FirstSeq, sum.LastSeq, sum.FirstSeq, sum.FirstSeq, sum.KeyCerts, sum.Checkpoints)
		return sum, &exitError{code: exitUnverified}
	}
	for _, g := range sum.HeartbeatGaps {
		fmt.Fprintf(stdout, "GAP: %s line %d: no checkpoint from %s (seq %d) to %s (seq %d), %s while the daemon ran (no audit.stop or audit.restart between), heartbeat %s: no signature of that time vouches for it; the daemon was frozen or its clock jumped, or the records between were rewritten\n",
			g.File, g.Line, g.From.Format(time.RFC3339), g.FromSeq, g.To.Format(time.RFC3339), g.ToSeq, g.To.Sub(g.From), g.Heartbeat)
	}
	for _, u := range sum.UnclosedEpochs {
		fmt.Fprintf(stdout, "GAP: %s line %d: epoch %d ended in a crash without its last checkpoint: the certification of epoch %d's key, signed by epoch %d's, pins seq 1-%d; seq %d-%d (its audit.epoch, and the torn tail a crash left) are vouched for only by later epochs' checkpoints, whose keys can sign over rewritten records; compare with checkpoints collected off the host (--checkpoint)\n",
			u.File, u.Line, u.Epoch, u.Epoch+1, u.Epoch, u.FromSeq-1, u.FromSeq, u.Seq)
	}
	for _, b := range sum.Backdated {
		fmt.Fprintf(stdout, "BACKDATED: %s line %d (seq %d): dated %s, before epoch %d's key was made (%s) by more than %s: the clock stepped back, or epoch %d's key holder backdated it; check-proof refuses a bundle of it\n",
			b.File, b.Line, b.Seq, b.Time.UTC().Format(time.RFC3339Nano), b.Epoch, b.KeyMade.UTC().Format(time.RFC3339Nano), audit.BackdateSlack, b.Epoch)
	}
	fmt.Fprintf(stdout, "ok: %d records in %d file(s), seq %d-%d, %s to %s, chain intact, %s%s; last %d:%s\n",
		sum.Records, sum.Files, sum.FirstSeq, sum.LastSeq, sum.First.Format(time.RFC3339Nano), sum.Last.Format(time.RFC3339Nano),
		seals, torn, sum.LastSeq, sum.LastHash)
	return sum, nil
}

// signedText describes what verify checked of a signed log.
func signedText(sum audit.Summary) string {
	s := fmt.Sprintf("signed: key certifications of epochs 1-%d from FILE.pub verified, %d checkpoints verified", sum.KeyCerts, sum.Checkpoints)
	if sum.KeyCerts == 0 {
		s = fmt.Sprintf("signed: epoch 0's key (FILE.pub), %d checkpoints verified", sum.Checkpoints)
	}
	s += fmt.Sprintf(" against the tree (root %s)", sum.TreeRoot) // without the tree (--start), verify says UNVERIFIED
	switch covered := max(sum.LastCheckpointSize, sum.LastCertSize); {
	case sum.LastCertSize > sum.LastCheckpointSize:
		// A key step pins the tree after the last checkpoint (the
		// epoch's last checkpoint follows it, or a stop came first).
		s += fmt.Sprintf(", the last at seq %d covers seq 1-%d and the certification of epoch %d's key, signed by epoch %d's, pins seq 1-%d", sum.LastCheckpointSeq, sum.LastCheckpointSize, sum.KeyCerts, sum.KeyCerts-1, sum.LastCertSize)
		if uint64(covered) < sum.LastSeq {
			s += fmt.Sprintf(" (seq %d-%d under neither yet)", covered+1, sum.LastSeq)
		}
	case uint64(covered) < sum.LastSeq:
		s += fmt.Sprintf(", the last at seq %d covers seq 1-%d (seq %d-%d under no checkpoint yet)", sum.LastCheckpointSeq, sum.LastCheckpointSize, sum.LastCheckpointSize+1, sum.LastSeq)
	}
	if sum.Collected > 0 {
		s += fmt.Sprintf(", %d collected checkpoint(s) proven consistent", sum.Collected)
	}
	if sum.Restarts > 0 {
		s += fmt.Sprintf(", %d restart(s) (%d after a crash)", sum.Restarts, sum.UncleanRestarts)
	}
	if n := len(sum.HeartbeatGaps); n > 0 {
		s += fmt.Sprintf(", %d heartbeat gap(s) (GAP: above)", n)
	}
	if n := len(sum.Backdated); n > 0 {
		s += fmt.Sprintf(", %d record(s) dated before their epoch's key was made (BACKDATED: above)", n)
	}
	if n := len(sum.UnclosedEpochs); n > 0 {
		s += fmt.Sprintf(", %d epoch(s) ended by a crash without their last checkpoint (GAP: above)", n)
	}
	return s
}

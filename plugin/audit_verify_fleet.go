package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/fleet"
)

// fleetArgs says whether verify's arguments are several hosts' logs: two
// DIRs or more. Anything else is one log, as before.
func fleetArgs(args []string) bool {
	if len(args) < 2 {
		return false
	}
	for _, a := range args {
		if st, err := os.Stat(a); err != nil || !st.IsDir() {
			return false
		}
	}
	return true
}

// hostLog is one host's log in a fleet verify, and what is matched to it.
type hostLog struct {
	dir, name, origin string
	files             []string
	pub               note.Verifier
	pubFile           string
	checkpoints       []audit.CollectedCheckpoint
}

// runVerifyFleet verifies each DIR's log on its own, as verify does one
// log, with the keys and checkpoints whose origin is that log's. Every line
// names its host; the last line sums up, and names the hosts that failed.
func runVerifyFleet(cmd *cobra.Command, o verifyOptions, dirs []string) error {
	switch {
	case o.keyFile != "":
		return refused(errors.New("--key with several DIRs: --key is one sealed log's initial key; verify each sealed log on its own"))
	case len(o.anchors) > 0 || len(o.start) > 0:
		return refused(errors.New("--anchor or --start with several DIRs: a SEQ:HASH is one log's; verify that log on its own"))
	case len(o.checkpoints) > 0 && len(o.pubFiles) == 0:
		return refused(errors.New("--checkpoint without --pubkey: a collected checkpoint is opened with the log's key chain, which starts from FILE.pub"))
	}
	logs, err := fleetLogs(dirs)
	if err != nil {
		return err
	}
	byOrigin := map[string]*hostLog{}
	var origins []string
	for _, l := range logs {
		if o := byOrigin[l.origin]; o != nil && l.origin != "" {
			return refused(fmt.Errorf("%s and %s hold logs of one origin, %s: the same log twice, or a copy; give each host's log once", o.dir, l.dir, l.origin))
		}
		if l.origin != "" {
			byOrigin[l.origin] = l
			origins = append(origins, l.origin)
		}
	}
	known := strings.Join(origins, ", ")
	if known == "" {
		known = "none: no DIR's log has a checkpoint"
	}
	for _, f := range o.pubFiles {
		pub, err := audit.ReadSignPub(f)
		if err != nil {
			return refused(err)
		}
		l := byOrigin[audit.PubOrigin(pub)]
		switch {
		case l == nil:
			return refused(fmt.Errorf("--pubkey %s: a key of log %s, which is none of the DIRs' logs (theirs: %s); a verifier key is matched to a log by origin, the first line of the log's checkpoints", f, audit.PubOrigin(pub), known))
		case l.pub != nil:
			return refused(fmt.Errorf("--pubkey %s: a second key of log %s (host %s, %s), which %s gave already; a log has one FILE.pub", f, l.origin, l.name, l.dir, l.pubFile))
		}
		l.pub, l.pubFile = pub, f
	}
	for _, f := range o.checkpoints {
		cs, err := audit.ReadCheckpoints(f)
		if err != nil {
			return refused(err)
		}
		for _, c := range cs {
			origin := audit.CheckpointOrigin(c.Note)
			l := byOrigin[origin]
			where := fmt.Sprintf("%s line %d", c.File, c.Line)
			if c.Line == 0 {
				where = c.File
			}
			switch {
			case l == nil:
				return refused(fmt.Errorf("--checkpoint %s: a checkpoint of log %q, which is none of the DIRs' logs (theirs: %s); collected checkpoints are matched to logs by origin: pass that host's DIR too, or a file of the given hosts' checkpoints", where, origin, known))
			case l.pub == nil:
				return refused(fmt.Errorf("--checkpoint %s: a checkpoint of host %s's log (%s), but no --pubkey is for that log: a collected checkpoint is opened with the log's key chain, which starts from its FILE.pub", where, l.name, l.dir))
			}
			l.checkpoints = append(l.checkpoints, c)
		}
	}
	stdout := cmd.OutOrStdout()
	var failedHosts, unverified []string
	for _, l := range logs {
		one := o
		one.pubFile = l.pubFile
		if l.pub != nil {
			one.chainOnly = false // --chain-only is for the logs no key is for
		}
		vo := audit.VerifyOptions{Pub: l.pub, Checkpoints: l.checkpoints}
		if l.pub != nil {
			vo.Heartbeat = o.heartbeat
		}
		var buf bytes.Buffer
		err := verifyLog(cmd, &buf, one, vo, l.files)
		var ee *exitError
		if errors.As(err, &ee) && ee.err != nil {
			fmt.Fprintf(&buf, "FAIL: %v\n", ee.err) // the log could not be read
		}
		sc := bufio.NewScanner(&buf)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			kind, rest, _ := strings.Cut(sc.Text(), ": ")
			fmt.Fprintf(stdout, "%s: host %s: %s\n", kind, l.name, rest)
		}
		switch {
		case err == nil:
		case errors.As(err, &ee) && ee.code == exitUnverified:
			unverified = append(unverified, l.name)
		default:
			failedHosts = append(failedHosts, l.name)
		}
	}
	n := len(logs)
	switch {
	case len(failedHosts) > 0:
		also := ""
		if len(unverified) > 0 {
			also = fmt.Sprintf("; %d not checked in full (UNVERIFIED above): %s", len(unverified), strings.Join(unverified, ", "))
		}
		fmt.Fprintf(stdout, "FAIL: %d of %d hosts failed: %s%s\n", len(failedHosts), n, strings.Join(failedHosts, ", "), also)
		return &exitError{code: exitFailed}
	case len(unverified) > 0:
		fmt.Fprintf(stdout, "UNVERIFIED: %d of %d hosts not checked in full (UNVERIFIED above): %s\n", len(unverified), n, strings.Join(unverified, ", "))
		return &exitError{code: exitUnverified}
	}
	names := make([]string, len(logs))
	for i, l := range logs {
		names[i] = l.name
	}
	fmt.Fprintf(stdout, "ok: %d hosts, each log verified on its own: %s\n", n, strings.Join(names, ", "))
	return nil
}

// fleetLogs reads each DIR's log files, host and origin. A host named by
// two DIRs is told apart by its DIR.
func fleetLogs(dirs []string) ([]*hostLog, error) {
	var logs []*hostLog
	seen := map[string]int{}
	for _, d := range dirs {
		files, err := audit.FilesIn(d)
		if err != nil {
			return nil, failed(fmt.Errorf("%s: %w", d, err))
		}
		host, err := fleet.LogHost(files)
		if err != nil {
			return nil, failed(err)
		}
		origin, err := audit.LogOrigin(files)
		if err != nil {
			return nil, failed(err)
		}
		logs = append(logs, &hostLog{dir: d, name: host, origin: origin, files: files})
		seen[host]++
	}
	for _, l := range logs {
		if seen[l.name] > 1 || l.name == "" {
			l.name = fmt.Sprintf("%s (%s)", dash(l.name), l.dir)
		}
	}
	return logs, nil
}

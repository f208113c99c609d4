package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/fleet"
)

// fleetArgs says whether verify's arguments are several hosts' logs: two
// DIRs or more. One DIR, or FILEs, are one log, as before; DIRs and FILEs
// together are refused, naming a DIR and a FILE.
func fleetArgs(args []string) (bool, error) {
	if len(args) < 2 {
		return false, nil
	}
	var dir, file string
	for _, a := range args {
		st, err := os.Stat(a)
		switch {
		case err != nil:
			return false, nil // the single-log reading says what is missing, as it always has
		case st.IsDir() && dir == "":
			dir = a
		case !st.IsDir() && file == "":
			file = a
		}
	}
	if dir != "" && file != "" {
		return false, refused(fmt.Errorf("%s is a DIR and %s a FILE: verify takes one log's FILEs, or several hosts' DIRs (one log each), not both; name %s's log by its DIR, or each file of one log", dir, file, file))
	}
	return dir != "", nil
}

// hostLog is one host's log in a fleet verify, and what is matched to it.
type hostLog struct {
	dir, host, name, origin string
	files                   []string
	pub                     note.Verifier
	pubFile                 string
	checkpoints             []audit.CollectedCheckpoint
	// notThisLog: keys and checkpoints of this host (by their origin's
	// <host>) that are of another log: the log was replaced or wiped.
	notThisLog []notThis
	more       map[string]*int // origin → how many more of its checkpoints
	empty      bool            // the log holds no record
}

// fleetRun is what a fleet verify matched: each DIR's log, and the
// collected checkpoints of no DIR's log or host.
type fleetRun struct {
	logs     []*hostLog
	byOrigin map[string]*hostLog
	unknown  []string // "ORIGIN (FILE line N, sent by H)" of checkpoints matched to no log
	// missing: keys of no DIR's log nor host, and their hosts: a host's
	// log not given, or replaced under another host name.
	missing, missingHosts []string
}

// ofHost returns the logs a key or checkpoint of origin, which is no
// DIR's log, must have been about: those of its host, or else the logs
// that name no origin (empty, or unsigned) of its host or of none.
func (r *fleetRun) ofHost(origin string) []*hostLog {
	host := audit.OriginHost(origin)
	if host == "" {
		return nil
	}
	var same, blank []*hostLog
	for _, l := range r.logs {
		switch {
		case l.host == host:
			same = append(same, l)
		case l.origin == "" && l.host == "":
			blank = append(blank, l)
		}
	}
	if len(same) > 0 {
		return same
	}
	return blank
}

// notThisLog records on each of ls that what, a key or (checkpoint set) a
// checkpoint, is of origin, another log of its host. Checkpoints of one
// origin are told once, the first named and the others counted.
func notThisLog(ls []*hostLog, origin, what, where string, checkpoint bool) {
	kind := "key"
	if checkpoint {
		kind = "checkpoint"
	}
	for _, l := range ls {
		if l.host == "" {
			l.host = audit.OriginHost(origin) // the host it should be: never "-" with ok
		}
		if l.more == nil {
			l.more = map[string]*int{}
		}
		if n, ok := l.more[origin]; ok && checkpoint {
			*n++
			continue
		}
		has := "holds no record"
		switch {
		case l.origin != "":
			has = "is log " + l.origin
		case !l.empty:
			has = "has no checkpoint (it is not signed)"
		}
		n := new(int)
		if checkpoint {
			l.more[origin] = n
		}
		l.notThisLog = append(l.notThisLog, notThis{n: n, origin: origin, where: where, checkpoint: checkpoint,
			text: fmt.Sprintf("%s is of log %s, of host %s, but the log in %s is not the log this %s is for (replaced or wiped): it %s", what, origin, l.host, l.dir, kind, has)})
	}
}

// notThis is a key or checkpoint that is of another log of a DIR's host,
// and how many more checkpoints of that log there were.
type notThis struct {
	text, origin, where string
	checkpoint          bool
	n                   *int
}

func (t notThis) String() string {
	if *t.n == 0 {
		return t.text
	}
	return fmt.Sprintf("%s (and %d more checkpoint(s) of that log)", t.text, *t.n)
}

// claim is what a checkpoint of another log under this host's name says
// when no key of that log was given: anyone who reaches the collector can
// send one, so it proves nothing, but the auditor must hear of it.
func (t notThis) claim(host string) string {
	more := ""
	if *t.n > 0 {
		more = fmt.Sprintf("; and %d more checkpoint(s) of that log", *t.n)
	}
	return fmt.Sprintf("the collector holds checkpoints of another log calling itself %s (origin %s, %s%s): a second log under this host name, or a replaced log; this host's own log is reported on above", host, t.origin, t.where, more)
}

// replaced splits what names l's host but is of another log: a key of
// another log (and that log's checkpoints) FAIL, the log in the DIR is not
// the host's; checkpoints alone are an unauthenticated claim.
func (l *hostLog) replaced() (fail, claims []notThis) {
	keyed := map[string]bool{}
	for _, t := range l.notThisLog {
		if !t.checkpoint {
			keyed[t.origin] = true
		}
	}
	for _, t := range l.notThisLog {
		if keyed[t.origin] {
			fail = append(fail, t)
		} else {
			claims = append(claims, t)
		}
	}
	return fail, claims
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
	nameLogs(logs)
	run := &fleetRun{logs: logs, byOrigin: map[string]*hostLog{}}
	var origins []string
	for _, l := range logs {
		if l.origin != "" {
			run.byOrigin[l.origin] = l
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
		origin := audit.PubOrigin(pub)
		l := run.byOrigin[origin]
		switch {
		case l == nil && len(run.ofHost(origin)) > 0:
			notThisLog(run.ofHost(origin), origin, "--pubkey "+f, "", false)
			continue
		case l == nil:
			// A host whose log is missing here, or was replaced under
			// another host name: dropping its key would hide that.
			run.missing = append(run.missing, fmt.Sprintf("--pubkey %s: no DIR holds log %s (host %s): its log is missing, or was replaced (a DIR's log under another name? theirs: %s); do not drop the key: name the host's DIR", f, origin, dash(audit.OriginHost(origin)), known))
			run.missingHosts = append(run.missingHosts, fmt.Sprintf("%s (--pubkey %s)", dash(audit.OriginHost(origin)), f))
			continue
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
			l := run.byOrigin[origin]
			where := fmt.Sprintf("%s line %d", c.File, c.Line)
			if c.Line == 0 {
				where = c.File
			}
			sent := where
			if c.Sender != "" {
				where += ", sent by " + c.Sender
				sent += ", sent by " + c.Sender + " as the collector recorded it, which the sender chooses"
			}
			switch {
			case l == nil && len(run.ofHost(origin)) > 0:
				notThisLog(run.ofHost(origin), origin, "the checkpoint ("+where+")", sent, true)
			case l == nil:
				run.unknown = append(run.unknown, fmt.Sprintf("%q (%s)", origin, where))
			case l.pub == nil:
				return refused(fmt.Errorf("--checkpoint %s: a checkpoint of host %s's log (%s), but no --pubkey is for that log: a collected checkpoint is opened with the log's key chain, which starts from its FILE.pub", where, l.name, l.dir))
			default:
				l.checkpoints = append(l.checkpoints, c)
			}
		}
	}
	nameLogs(logs)
	stdout := cmd.OutOrStdout()
	var failedHosts, unverified []string
	for _, l := range logs {
		fail, claims := l.replaced()
		if len(fail) > 0 {
			for _, why := range fail {
				fmt.Fprintf(stdout, "FAIL: host %s: %s\n", l.name, why.String())
			}
			for _, c := range claims {
				fmt.Fprintf(stdout, "UNVERIFIED: host %s: %s\n", l.name, c.claim(l.host))
			}
			failedHosts = append(failedHosts, l.name)
			continue
		}
		err := verifyHost(cmd, stdout, o, l)
		for _, c := range claims {
			fmt.Fprintf(stdout, "UNVERIFIED: host %s: %s\n", l.name, c.claim(l.host))
		}
		var ee *exitError
		switch {
		case err == nil && len(claims) == 0:
		case err == nil || errors.As(err, &ee) && ee.code == exitUnverified:
			unverified = append(unverified, l.name)
		default:
			failedHosts = append(failedHosts, l.name)
		}
	}
	for _, u := range run.unknown {
		fmt.Fprintf(stdout, "UNVERIFIED: collected checkpoint of log %s: of none of the DIRs' logs or hosts, so not checked; pass that host's DIR and key to check it\n", u)
	}
	for _, m := range run.missing {
		fmt.Fprintf(stdout, "UNVERIFIED: %s\n", m)
	}
	n := len(logs)
	var notGiven []string
	if len(run.unknown) > 0 {
		notGiven = append(notGiven, fmt.Sprintf("%d collected checkpoint(s) of logs not given not checked", len(run.unknown)))
	}
	if len(run.missing) > 0 {
		notGiven = append(notGiven, fmt.Sprintf("%d key(s) of a log no DIR holds: %s", len(run.missing), strings.Join(run.missingHosts, ", ")))
	}
	notChecked := ""
	if len(notGiven) > 0 {
		notChecked = "; " + strings.Join(notGiven, "; ")
	}
	switch {
	case len(failedHosts) > 0:
		also := ""
		if len(unverified) > 0 {
			also = fmt.Sprintf("; %d not checked in full (UNVERIFIED above): %s", len(unverified), strings.Join(unverified, ", "))
		}
		fmt.Fprintf(stdout, "FAIL: %d of %d hosts failed: %s%s%s\n", len(failedHosts), n, strings.Join(failedHosts, ", "), also, notChecked)
		return &exitError{code: exitFailed}
	case len(unverified) > 0:
		fmt.Fprintf(stdout, "UNVERIFIED: %d of %d hosts not checked in full (UNVERIFIED above): %s%s\n", len(unverified), n, strings.Join(unverified, ", "), notChecked)
		return &exitError{code: exitUnverified}
	case len(notGiven) > 0:
		fmt.Fprintf(stdout, "UNVERIFIED: %d hosts verified, but %s (UNVERIFIED above)\n", n, strings.Join(notGiven, "; "))
		return &exitError{code: exitUnverified}
	}
	names := make([]string, len(logs))
	for i, l := range logs {
		names[i] = l.name
	}
	fmt.Fprintf(stdout, "ok: %d hosts, each log verified on its own: %s\n", n, strings.Join(names, ", "))
	return nil
}

// verifyHost verifies one host's log with its key and the checkpoints of
// its origin, and prints verify's lines, each naming the host. A signed
// or sealed log checked by its chain alone (--chain-only, no key) is
// UNVERIFIED: in a fleet, ok says every host was fully checked.
func verifyHost(cmd *cobra.Command, stdout io.Writer, o verifyOptions, l *hostLog) error {
	if l.empty {
		fmt.Fprintf(stdout, "UNVERIFIED: host %s: the log holds no record, so nothing of its host is checked; a running hostpass writes audit.start first, so an empty log was set up and never run, or wiped\n", l.name)
		return &exitError{code: exitUnverified}
	}
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
	sum, err := verifyLog(cmd, &buf, one, vo, l.files)
	var ee *exitError
	if errors.As(err, &ee) && ee.err != nil {
		fmt.Fprintf(&buf, "FAIL: %v\n", ee.err) // the log could not be read
	}
	chainOnly := err == nil && one.chainOnly && (sum.Checkpoints > 0 && !sum.Signed || sum.Sealed && !sum.SealsChecked)
	if chainOnly {
		err = &exitError{code: exitUnverified}
	}
	if err == nil && l.pub != nil && len(o.checkpoints) > 0 && len(l.checkpoints) == 0 {
		// A host that stopped sending checkpoints can then cut its
		// tail unseen: without one, its log's end is its own word.
		fmt.Fprintf(&buf, "UNVERIFIED: no collected checkpoint of its log (%s) was given (--checkpoint %s): its end is not checked against what left the host; a host that stops sending checkpoints can cut its tail unseen\n", l.origin, strings.Join(o.checkpoints, ", "))
		err = &exitError{code: exitUnverified}
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), ": ")
		if kind == "ok" && chainOnly {
			kind = "UNVERIFIED" // its content is unchecked: not ok among checked hosts
		}
		fmt.Fprintf(stdout, "%s: host %s: %s\n", kind, l.name, rest)
	}
	if sc.Err() != nil {
		fmt.Fprintf(stdout, "FAIL: host %s: verify's report of it could not be read back: %v\n", l.name, sc.Err())
		return &exitError{code: exitFailed}
	}
	return err
}

// fleetLogs reads each DIR's log files, host and origin. The same log
// given twice (a DIR and a link to it, or a copy) is refused, naming both.
func fleetLogs(dirs []string) ([]*hostLog, error) {
	var logs []*hostLog
	seen := map[string]string{} // real path, or first record's hash → DIR
	for _, d := range dirs {
		files, err := logFilesIn(d, "")
		if err != nil {
			return nil, err
		}
		host, err := fleet.LogHost(files)
		if err != nil {
			return nil, failed(err)
		}
		origin, err := audit.LogOrigin(files)
		if err != nil {
			return nil, failed(err)
		}
		for _, l := range logs {
			if l.origin == origin && origin != "" {
				return nil, refused(fmt.Errorf("%s and %s hold logs of one origin, %s: the same log twice, or a copy; give each host's log once", l.dir, d, origin))
			}
		}
		for _, id := range sameLogIDs(files) {
			if other, ok := seen[id]; ok {
				return nil, refused(fmt.Errorf("%s and %s hold the same log (%s): the same log twice, or a copy; give each host's log once", other, d, id))
			}
			seen[id] = d
		}
		logs = append(logs, &hostLog{dir: d, host: host, origin: origin, files: files, empty: host == ""})
	}
	return logs, nil
}

// sameLogIDs names what makes two logs one: the real path of their first
// file, and their first record's hash.
func sameLogIDs(files []string) []string {
	if len(files) == 0 {
		return nil
	}
	var ids []string
	if real, err := filepath.EvalSymlinks(files[0]); err == nil {
		ids = append(ids, "file "+real)
	}
	if h := fleet.FirstHash(files); h != "" {
		ids = append(ids, "first record's hash "+h)
	}
	return ids
}

// nameLogs names each log by its host; a host named by two DIRs, or by
// none, is told apart by its DIR.
func nameLogs(logs []*hostLog) {
	seen := map[string]int{}
	for _, l := range logs {
		seen[l.host]++
	}
	for _, l := range logs {
		l.name = l.host
		if seen[l.host] > 1 || l.host == "" {
			l.name = fmt.Sprintf("%s (%s)", dash(l.host), l.dir)
		}
	}
}

// logFilesIn is the files of the log in dir, or an error saying what a
// DIR must hold.
func logFilesIn(dir, orElse string) ([]string, error) {
	files, err := audit.FilesIn(dir)
	if err == nil {
		return files, nil
	}
	if ms, _ := filepath.Glob(filepath.Join(dir, "*.jsonl*")); len(ms) == 0 {
		return nil, failed(fmt.Errorf("%s holds no audit log: a DIR must hold one host's log, audit.jsonl (or another *.jsonl) and the files rotated from it%s", dir, orElse))
	}
	return nil, failed(fmt.Errorf("%s: %w", dir, err))
}

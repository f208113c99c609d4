package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hostpass/hostpass/audit"
)

const auditUsage = `Usage:
  hostpass audit verify [--key INITIAL-KEY-FILE] [--anchor SEQ:HASH]... [FILE... | DIR]
  hostpass audit show [--network NAME|ID] [--endpoint ID] [--container NAME|ID] [--event EVENT] [--since T] [--until T] [--json [--interfaces]] [--follow] [FILE... | DIR]
  hostpass audit keygen FILE

Without FILE or DIR, the daemon's log ($HOSTPASS_AUDIT_LOG, or /var/log/hostpass/audit.jsonl)
and the files rotated from it are read, oldest first.
`

func runAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return 2
	}
	switch args[0] {
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "show":
		return runShow(args[1:], stdout, stderr)
	case "keygen":
		return runKeygen(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return 0
	}
	fmt.Fprintf(stderr, "hostpass audit: unknown command %q; commands: verify, show, keygen\n", args[0])
	return 2
}

// logFiles resolves the FILE... | DIR arguments to the log's files in chain
// order. One file named is taken with the files rotated from it.
func logFiles(args []string) ([]string, error) {
	if len(args) == 0 {
		path := os.Getenv("HOSTPASS_AUDIT_LOG")
		if path == "" {
			path = "/var/log/hostpass/audit.jsonl"
		}
		args = []string{path}
	}
	var files []string
	var err error
	if len(args) > 1 {
		files = args
	} else if st, serr := os.Stat(args[0]); serr == nil && st.IsDir() {
		files, err = audit.FilesIn(args[0])
	} else if serr != nil && !errors.Is(serr, os.ErrNotExist) {
		return nil, serr
	} else {
		files, err = audit.Files(args[0])
	}
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no audit log at %s", strings.Join(args, " "))
	}
	return files, nil
}

// anchors collects --anchor SEQ:HASH flags.
type anchors map[uint64]string

func (a anchors) String() string { return "" }
func (a anchors) Set(s string) error {
	seq, h, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if _, herr := hex.DecodeString(h); !ok || err != nil || n == 0 || len(h) != 64 || herr != nil {
		return fmt.Errorf("want SEQ:HASH, a record's seq and its 64-hex-digit hash, got %q", s)
	}
	a[n] = h
	return nil
}

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hostpass audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "", "initial sealing key file (from `hostpass audit keygen`): also check every seal")
	anch := anchors{}
	fs.Var(anch, "anchor", "SEQ:HASH of a record known from elsewhere (a syslog collector, an earlier verify); repeatable")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o := audit.VerifyOptions{Anchors: anch}
	if *keyFile != "" {
		epoch, key, err := audit.ReadKeyFile(*keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "hostpass audit verify: %v\n", err)
			return 2
		}
		if epoch != 0 {
			fmt.Fprintf(stderr, "hostpass audit verify: %s holds the key of epoch %d; verify needs the initial key (epoch 0), kept off the host\n", *keyFile, epoch)
			return 2
		}
		o.Key = key
	}
	files, err := logFiles(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "hostpass audit verify: %v\n", err)
		return 2
	}
	sum, err := audit.Verify(files, o)
	var p *audit.Problem
	if errors.As(err, &p) {
		fmt.Fprintf(stdout, "FAIL: %s\n", p)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "hostpass audit verify: %v\n", err)
		return 1
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
	return 0
}

func runKeygen(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: hostpass audit keygen FILE (a new file: it is never overwritten)")
		return 2
	}
	if err := audit.NewKeyFile(args[0]); err != nil {
		fmt.Fprintf(stderr, "hostpass audit keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, `wrote a new initial sealing key to %[1]s (mode 0600).
Install a copy as the daemon's key file, then move %[1]s off this host (it verifies every seal):
  install -m 0600 %[1]s /var/lib/hostpass/seal.key
  hostpass serve --seal-key /var/lib/hostpass/seal.key      (or HOSTPASS_SEAL_KEY)
The daemon's copy evolves and overwrites itself; only this initial copy can check the whole log:
  hostpass audit verify --key %[1]s /var/log/hostpass
`, args[0])
	return 0
}

func runShow(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hostpass audit show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f audit.Filter
	var since, until string
	fs.StringVar(&f.Network, "network", "", "network name, ID or ID prefix")
	fs.StringVar(&f.Endpoint, "endpoint", "", "endpoint ID or ID prefix")
	fs.StringVar(&f.Container, "container", "", "container name, ID or ID prefix: its host-mode records, and every record of its endpoints")
	fs.StringVar(&f.Event, "event", "", "event, or a prefix of one (endpoint. for all endpoint events)")
	fs.StringVar(&since, "since", "", "records at or after T: RFC 3339 time, or a duration ago (10m)")
	fs.StringVar(&until, "until", "", "records at or before T: RFC 3339 time, or a duration ago")
	asJSON := fs.Bool("json", false, "print the records as they are in the log, one per line")
	fs.BoolVar(&f.Interfaces, "interfaces", false, "with --json: add to each join the host_interfaces of the host.view record it names")
	follow := fs.Bool("follow", false, "after the log's end, keep printing new records until interrupted")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if f.Since, err = parseWhen(since); err != nil {
		fmt.Fprintf(stderr, "hostpass audit show: --since: %v\n", err)
		return 2
	}
	if f.Until, err = parseWhen(until); err != nil {
		fmt.Fprintf(stderr, "hostpass audit show: --until: %v\n", err)
		return 2
	}
	files, err := logFiles(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "hostpass audit show: %v\n", err)
		return 2
	}
	out := newPrinter(stdout, *asJSON)
	if err := audit.Query(files, f, out.print); err != nil {
		fmt.Fprintf(stderr, "hostpass audit show: %v\n", err)
		return 1
	}
	out.flush()
	if *follow {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = audit.Follow(ctx, files[len(files)-1], f, func(r *audit.Entry, line []byte) error {
			err := out.print(r, line)
			out.flush()
			return err
		})
		if err != nil {
			fmt.Fprintf(stderr, "hostpass audit show: %v\n", err)
			return 1
		}
	}
	return 0
}

func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-28T10:00:00Z) nor a duration (90m)", s)
}

// printer writes records as a table (the default) or as raw JSON lines. The
// table has fixed columns, so a million rows stream out without being held
// to measure them.
type printer struct {
	w      *bufio.Writer
	json   bool
	header bool
}

func newPrinter(w io.Writer, asJSON bool) *printer {
	return &printer{w: bufio.NewWriterSize(w, 1<<16), json: asJSON}
}

const rowFormat = "%-24s  %7s  %-18s  %-7s  %-12s  %-12s  %-20s  %-14s  %s\n"

func (p *printer) print(r *audit.Entry, line []byte) error {
	if p.json {
		_, err := fmt.Fprintf(p.w, "%s\n", line)
		return err
	}
	if !p.header {
		fmt.Fprintf(p.w, rowFormat, "TIME", "SEQ", "EVENT", "OUTCOME", "NETWORK", "ENDPOINT", "CONTAINER", "TAG", "NOTE")
		p.header = true
	}
	note := r.Error
	if note == "" {
		note = r.Detail
	}
	switch {
	case note == "" && r.Adopted:
		note = "adopted network"
	case note == "" && r.Action != "":
		note = r.Action
	}
	if r.ObservedLate {
		note = strings.TrimSpace("observed late " + note)
	}
	container := "-"
	if r.Container != nil {
		container = r.Container.Name
		if container == "" {
			container = shortID(r.Container.ID)
		}
	}
	_, err := fmt.Fprintf(p.w, rowFormat, r.Time.Format("2006-01-02T15:04:05.000Z07:00"), strconv.FormatUint(r.Seq, 10), r.Event, r.Outcome,
		shortID(r.NetworkID), shortID(r.EndpointID), container, dash(r.Tag), note)
	return err
}

func (p *printer) flush() { p.w.Flush() }

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return dash(id)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

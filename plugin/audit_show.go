package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/fleet"
)

type showOptions struct {
	filter       audit.Filter
	host         string
	since, until string
	json, follow bool
	noProgress   bool
}

func newAuditShowCommand() *cobra.Command {
	var o showOptions
	cmd := &cobra.Command{
		Use:   "show [flags] [FILE... | DIR...]",
		Short: "List audit records by network, endpoint, container, service, event, time",
		Long: `List audit records by network, endpoint, container, service, event, time.

FILE... is one log's files; DIR is a log's folder. Several DIRs are several
hosts' logs, and a syslog collector's file (rsyslog's received.log, or a
DIR holding it) may hold several hosts' records: their records are merged
by time, each host's in seq order, under a HOST column. A record in a
host's log that names another host is shown under the log's host, with
what it claims in NOTE; a collector's record, under the HOSTNAME the
collector recorded for its message. show checks no chain: run verify first.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShow(cmd, o, args)
		},
	}
	flags := cmd.Flags()
	flags.SortFlags = false
	flags.StringVar(&o.filter.Network, "network", "", "network name, ID or ID prefix")
	flags.StringVar(&o.filter.Endpoint, "endpoint", "", "endpoint ID or ID prefix")
	flags.StringVar(&o.filter.Container, "container", "", "container name, ID or ID prefix: its host-mode records, and every record of its endpoints")
	flags.StringVar(&o.filter.Service, "service", "", "swarm service ID, name, or a prefix of one service's ID (as docker resolves it), as its tasks' container labels state it: its tasks' records, and every record of their endpoints")
	flags.StringVar(&o.host, "host", "", "host name, as its records name it: that host's records alone")
	flags.StringVar(&o.filter.Event, "event", "", "event, or a prefix of one (endpoint. for all endpoint events)")
	flags.StringVar(&o.since, "since", "", "records at or after T: RFC 3339 time, or a duration ago (10m)")
	flags.StringVar(&o.until, "until", "", "records at or before T: RFC 3339 time, or a duration ago")
	flags.BoolVar(&o.json, "json", false, "print the records as they are in the log, one per line")
	flags.BoolVar(&o.follow, "follow", false, "after the log's end, keep printing new records until interrupted")
	flags.BoolVar(&o.noProgress, "no-progress", false, noProgressUsage)
	flags.BoolVar(&o.filter.Interfaces, "interfaces", false, "with --json: add to each join the host_interfaces of the host.view record it names")
	return cmd
}

func runShow(cmd *cobra.Command, o showOptions, args []string) error {
	f := o.filter
	var err error
	if f.Since, err = parseWhen(o.since); err != nil {
		return refused(fmt.Errorf("--since: %w", err))
	}
	if f.Until, err = parseWhen(o.until); err != nil {
		return refused(fmt.Errorf("--until: %w", err))
	}
	sources, err := fleetSources(args)
	if err != nil {
		return err
	}
	if sources != nil {
		return runShowFleet(cmd, o, f, sources)
	}
	files, err := logFiles(args)
	if err != nil {
		return err
	}
	if o.host != "" {
		f.Host = o.host
	}
	passes := 1
	if f.Network != "" || f.Container != "" {
		passes = 2 // audit.Query reads the log once to learn IDs, then to show
	}
	meter, endMeter := newMeter(cmd, o.noProgress, files, passes)
	stdout := cmd.OutOrStdout()
	if meter != nil {
		f.Progress = meter.Add
		if _, tty := terminal(stdout); tty {
			stdout = meter.ClearBefore(stdout) // rows and the line share the screen
		}
	}
	out := newPrinter(stdout, o.json)
	err = audit.Query(files, f, out.print)
	endMeter()
	if err != nil {
		return queryFailed(err)
	}
	out.flush()
	if o.follow {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = audit.Follow(ctx, files[len(files)-1], f, func(r *audit.Entry, line []byte) error {
			err := out.print(r, line)
			out.flush()
			return err
		})
		if err != nil {
			return failed(err)
		}
	}
	return nil
}

// runShowFleet shows several logs, or a collector's file, merged by time.
func runShowFleet(cmd *cobra.Command, o showOptions, f audit.Filter, sources []fleet.Source) error {
	if o.follow {
		return refused(errFollowFleet)
	}
	passes := 1
	if f.Network != "" || f.Container != "" || f.Service != "" {
		passes = 2
	}
	meter, endMeter := newMeter(cmd, o.noProgress, allFiles(sources), passes)
	stdout := cmd.OutOrStdout()
	if meter != nil {
		f.Progress = meter.Add
		if _, tty := terminal(stdout); tty {
			stdout = meter.ClearBefore(stdout)
		}
	}
	out := newPrinter(stdout, o.json)
	out.hosts = true
	err := fleet.Show(sources, f, o.host, func(r fleet.Row) error {
		out.host, out.claimed, out.collected, out.chainBreak = r.Host, r.Claimed, r.Collected, r.Break
		return out.print(r.Entry, r.Line)
	})
	endMeter()
	if err != nil {
		return queryFailed(err)
	}
	out.flush()
	return nil
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
//
// Rows reach w whole: a write never ends mid-row, so on a terminal the
// progress line is drawn between writes (ClearBefore draws nothing after a
// write that ends mid-line) and no half row waits on screen.
type printer struct {
	w      *bufio.Writer
	json   bool
	header bool
	// hosts: the rows are of several hosts, with a HOST column first;
	// host and claimed are the row's (fleet.Row).
	hosts         bool
	host, claimed string
	collected     bool
	chainBreak    string // a collector's row that does not follow its sender's record before
	row           []byte // the row being written, reused
}

func newPrinter(w io.Writer, asJSON bool) *printer {
	return &printer{w: bufio.NewWriterSize(w, 1<<16), json: asJSON}
}

// hostFormat is the HOST column, ahead of rowFormat's.
const hostFormat = "%-16s  "

const rowFormat = "%-24s  %7s  %-18s  %-7s  %-12s  %-12s  %-20s  %-14s  %s\n"

func (p *printer) print(r *audit.Entry, line []byte) error {
	if p.json {
		line = bytes.TrimSuffix(line, []byte{'\r'}) // a file with CRLF lines: one line ending, not two
		return p.write(append(append(p.row[:0], line...), '\n'))
	}
	if !p.header {
		var head []byte
		if p.hosts {
			head = fmt.Appendf(head, hostFormat, "HOST")
		}
		if err := p.write(fmt.Appendf(head, rowFormat, "TIME", "SEQ", "EVENT", "OUTCOME", "NETWORK", "ENDPOINT", "CONTAINER", "TAG", "NOTE")); err != nil {
			return err
		}
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
	if p.claimed != "" {
		where := "in the log of"
		if p.collected {
			where = "sent to the collector as"
		}
		note = strings.TrimSuffix(fmt.Sprintf("record claims host %q, %s %q; %s", p.claimed, where, p.host, note), "; ")
	}
	if p.chainBreak != "" {
		note = strings.TrimSuffix(p.chainBreak+"; "+note, "; ")
	}
	container := "-"
	if r.Container != nil {
		container = r.Container.Name
		if container == "" {
			container = shortID(r.Container.ID)
		}
	}
	row := p.row[:0]
	if p.hosts {
		row = fmt.Appendf(row, hostFormat, printable(p.host))
	}
	return p.write(fmt.Appendf(row, rowFormat, r.Time.Format("2006-01-02T15:04:05.000Z07:00"), strconv.FormatUint(r.Seq, 10), printable(string(r.Event)), printable(string(r.Outcome)),
		printable(shortID(r.NetworkID)), printable(shortID(r.EndpointID)), printable(container), printable(dash(r.Tag)), printable(note)))
}

// write buffers one whole row, flushing what is buffered first if the row
// does not fit: bufio would otherwise fill the buffer with the row's start
// and write it alone. A row longer than the buffer goes out in one write.
func (p *printer) write(row []byte) error {
	p.row = row
	if len(row) > p.w.Available() && p.w.Buffered() > 0 {
		if err := p.w.Flush(); err != nil {
			return err
		}
	}
	_, err := p.w.Write(row)
	return err
}

func (p *printer) flush() { p.w.Flush() }

// printable is s with its control characters (a newline would forge a
// row), invisible line breaks and bidi controls (which reorder what a
// terminal shows) escaped as Go escapes them: \n, \x1b, \u202e. A record's
// names and texts are anyone's who can name a container or a service.
func printable(s string) string {
	if !strings.ContainsFunc(s, unprintable) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !unprintable(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func unprintable(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Bidi_Control, unicode.Zl, unicode.Zp)
}

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

package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/fleet"
)

type sessionsOptions struct {
	filter       fleet.SessionFilter
	since, until string
	json         bool
	noProgress   bool
}

func newAuditSessionsCommand() *cobra.Command {
	var o sessionsOptions
	cmd := &cobra.Command{
		Use:   "sessions [flags] [FILE... | DIR...]",
		Short: "List host-mode sessions per host: who ran in host mode, where, from when to when",
		Long: `List host-mode sessions per host: who ran in host mode, where, from when to when.

One row per session: a container's run with --network host (MODE host,
host.join to host.leave), or its endpoint on a hostpass network (MODE
hostpass:NETWORK, endpoint.join to endpoint.leave, the container from
endpoint.attribute). Rows are by HOST, then FROM. The arguments are read as
show reads them: one log, several hosts' DIRs, a collector's file (HOST
is then the HOSTNAME the collector recorded). sessions checks no chain:
run verify first.

DURATION is TO less FROM (host mode: the watcher's host_mode_seconds). A
session with no leave by the log's end is "open": TO is -, and DURATION runs
to the host's last record. A session spanning a window hostpass was not
looking (a watch.gap Docker's replay did not cover, a daemon restart) has
DURATION "unknown" and NOTE says which record cut it: its leave may be
missing or late. An endpoint whose Leave Docker never sent (dockerd was
killed) ends at its endpoint.stale: TO is when hostpass saw it, DURATION runs
to when its container stopped, "unknown" if Docker no longer said. A leave
earlier than its join (the host's clock stepped back) gives DURATION
"unknown" too, and NOTE says so.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSessions(cmd, o, args)
		},
	}
	flags := cmd.Flags()
	flags.SortFlags = false
	flags.StringVar(&o.filter.Service, "service", "", "swarm service ID, name, or a prefix of one service's ID (as docker resolves it): its tasks' sessions")
	flags.StringVar(&o.filter.Container, "container", "", "task or container name, or container ID prefix")
	flags.StringVar(&o.filter.Host, "host", "", "host name: that host's sessions alone")
	flags.StringVar(&o.since, "since", "", "sessions that end at or after T (that overlap the window): RFC 3339 time, or a duration ago (10m)")
	flags.StringVar(&o.until, "until", "", "sessions that begin at or before T: RFC 3339 time, or a duration ago")
	flags.BoolVar(&o.json, "json", false, "print one JSON object per session")
	flags.BoolVar(&o.noProgress, "no-progress", false, noProgressUsage)
	return cmd
}

func runSessions(cmd *cobra.Command, o sessionsOptions, args []string) error {
	var err error
	if o.filter.Since, err = parseWhen(o.since); err != nil {
		return refused(fmt.Errorf("--since: %w", err))
	}
	if o.filter.Until, err = parseWhen(o.until); err != nil {
		return refused(fmt.Errorf("--until: %w", err))
	}
	sources, err := fleetSources(args)
	if err != nil {
		return err
	}
	if sources == nil {
		files, err := logFiles(args)
		if err != nil {
			return err
		}
		host, err := fleet.LogHost(files)
		if err != nil {
			return failed(err)
		}
		sources = []fleet.Source{{Name: files[0], Files: files, Host: host}}
	}
	meter, endMeter := newMeter(cmd, o.noProgress, allFiles(sources), 1)
	if meter != nil {
		o.filter.Progress = meter.Add
	}
	sessions, err := fleet.Sessions(sources, o.filter)
	endMeter()
	if err != nil {
		return queryFailed(err)
	}
	stdout := cmd.OutOrStdout()
	if o.json {
		enc := json.NewEncoder(stdout)
		for _, s := range sessions {
			if err := enc.Encode(s); err != nil {
				return failed(err)
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "HOST\tSERVICE\tTASK\tMODE\tFROM\tTO\tDURATION\tNOTE")
	for _, s := range sessions {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(s.Host), printable(dash(s.Service)), printable(dash(s.Task)), printable(s.Mode),
			s.From.Format(sessionTime), sessionTo(s), sessionDuration(s), printable(sessionNote(s)))
	}
	return w.Flush()
}

const sessionTime = "2006-01-02T15:04:05.000Z07:00"

func sessionTo(s fleet.Session) string {
	if s.Open {
		return "-"
	}
	return s.To.Format(sessionTime)
}

func sessionDuration(s fleet.Session) string {
	if s.Duration == nil {
		return "unknown"
	}
	d := time.Duration(*s.Duration * float64(time.Second)).Round(time.Millisecond).String()
	if s.Open {
		return d + "+"
	}
	return d
}

func sessionNote(s fleet.Session) string {
	var note []string
	if s.Open {
		note = append(note, "open: no leave by the host's last record, "+s.Last.Format(sessionTime))
	}
	if s.NoJoin {
		note = append(note, "the log holds no join of it: FROM is the start its leave's record gives")
	}
	if s.Cut != "" {
		note = append(note, s.Cut)
	}
	switch {
	case s.Stale && s.Duration != nil:
		note = append(note, "ended by endpoint.stale, observed late: Docker sent no Leave for the endpoint; TO is when hostpass saw it, DURATION runs to when its container stopped")
	case s.Stale:
		note = append(note, "ended by endpoint.stale, observed late: Docker sent no Leave for the endpoint; TO is when hostpass saw it")
	case s.LateLeave:
		note = append(note, "leave observed late: TO is when hostpass saw it")
	}
	if s.Claimed != "" {
		where := "in the log of"
		if s.Collected {
			where = "sent to the collector as"
		}
		note = append(note, fmt.Sprintf("records claim host %q, %s %q", s.Claimed, where, s.Host))
	}
	out := ""
	for i, n := range note {
		if i > 0 {
			out += "; "
		}
		out += n
	}
	return dash(out)
}

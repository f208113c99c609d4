package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/errclass"
	"github.com/hostpass/hostpass/fleet"
)

// collectorFile is the name of a syslog collector's file of every message
// as received, in the layout docs/offhost.md gives (one folder per host).
const collectorFile = "received.log"

// fleetSources resolves show's and sessions' FILE... | DIR... arguments
// when they name more than one log: each DIR is a host's log; a FILE whose
// first line is a syslog message (it starts with '<') is a collector's
// file, as is a DIR holding received.log and no log; the other FILEs are,
// together, one log's files, as they are without DIRs. It returns nil
// sources for one log and nothing else: the single-log reading, unchanged.
func fleetSources(args []string) ([]fleet.Source, error) {
	var sources []fleet.Source
	var logFilesNamed []string
	collector := false
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil && len(args) == 1 {
			return nil, nil // logFiles says what is missing, as it always has
		}
		if err != nil {
			return nil, failed(fmt.Errorf("no audit log at %s: %w", a, err))
		}
		if st.IsDir() {
			files, err := audit.FilesIn(a)
			switch {
			case err == nil && len(args) == 1:
				return nil, nil // one log's DIR: the single-log reading
			case err == nil:
				sources = append(sources, fleet.Source{Name: a, Files: files})
			case isCollectorFile(filepath.Join(a, collectorFile)):
				r := filepath.Join(a, collectorFile)
				sources, collector = append(sources, fleet.Source{Name: r, Files: []string{r}, Collector: true}), true
			case len(args) == 1:
				return nil, nil // logFiles says what is wrong with it, as it always has
			default:
				_, err := logFilesIn(a, ", or a syslog collector's file, "+collectorFile)
				return nil, err
			}
			continue
		}
		if isCollectorFile(a) {
			sources, collector = append(sources, fleet.Source{Name: a, Files: []string{a}, Collector: true}), true
			continue
		}
		logFilesNamed = append(logFilesNamed, a)
	}
	if len(logFilesNamed) == 1 {
		if files, err := audit.Files(logFilesNamed[0]); err == nil && len(files) > 0 {
			logFilesNamed = files // with the files rotated from it, as for one log
		}
	}
	if len(logFilesNamed) > 0 {
		sources = append(sources, fleet.Source{Name: logFilesNamed[0], Files: logFilesNamed})
	}
	if len(sources) < 2 && !collector {
		return nil, nil
	}
	for i, s := range sources {
		if s.Collector {
			continue
		}
		host, err := fleet.LogHost(s.Files)
		if err != nil {
			return nil, failed(err)
		}
		sources[i].Host = host
	}
	return sources, nil
}

// isCollectorFile says whether path's first line is a syslog message: a
// collector's file. A log's lines start with '{'.
func isCollectorFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := bufio.NewReader(f).Peek(1)
	return err == nil && b[0] == '<'
}

// allFiles lists the sources' files, for the progress meter.
func allFiles(sources []fleet.Source) []string {
	var files []string
	for _, s := range sources {
		files = append(files, s.Files...)
	}
	return files
}

var errFollowFleet = errors.New("--follow reads one log as it grows; these arguments are several hosts' logs or a collector's file: follow each host's log on its own, or the collector's file with tail -f")

// queryFailed is a show's or sessions' read that failed: a refused
// setting (an ambiguous --service) is a usage error, the rest a failure.
func queryFailed(err error) error {
	if errclass.IsInvalidParameter(err) {
		return refused(err)
	}
	return failed(err)
}

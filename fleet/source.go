// Package fleet reads many hosts' audit trails as one: their logs, each a
// host's, and syslog collectors' files, which may hold several hosts. It
// merges their records by time (show) and lists host-mode sessions per
// host (sessions). Each log stays what package audit reads and verifies:
// nothing here checks a chain.
package fleet

import (
	"encoding/json"
	"errors"
	"iter"

	"github.com/hostpass/hostpass/audit"
)

// Source is one input of the fleet view.
type Source struct {
	Name  string   // as the user named it: a DIR, a FILE
	Files []string // a log's files in chain order; a collector's file alone
	// Collector: a syslog collector's file (rsyslog's received.log), whose
	// records may be of several hosts.
	Collector bool
	// Host: a log's host, as its first record names it; "" for a
	// collector's file, whose rows name their own record's host.
	Host string
}

// errFirst stops a read after its first record.
var errFirst = errors.New("first record read")

// LogHost returns the host a log's first record names: the log's host;
// "" for a log with no record yet (a host just set up).
func LogHost(files []string) (string, error) {
	host := ""
	err := audit.Query(files, audit.Filter{}, func(e *audit.Entry, _ []byte) error {
		host = e.Host
		return errFirst
	})
	if err != nil && !errors.Is(err, errFirst) {
		return "", err
	}
	return host, nil
}

// FirstHash returns the hash of a log's first record: two logs with the
// same first record are one log, or copies; "" for a log with none.
func FirstHash(files []string) string {
	hash := ""
	_ = audit.Query(files, audit.Filter{}, func(_ *audit.Entry, line []byte) error {
		var r struct {
			Hash string `json:"hash"`
		}
		_ = json.Unmarshal(line, &r)
		hash = r.Hash
		return errFirst
	})
	return hash
}

// records yields the records of one source that pass f, in its order.
func records(s Source, f audit.Filter) (iter.Seq2[*audit.Entry, []byte], *error) {
	var err error
	return func(yield func(*audit.Entry, []byte) bool) {
		err = audit.Query(s.Files, f, func(e *audit.Entry, line []byte) error {
			if !yield(e, line) {
				return errFirst
			}
			return nil
		})
		if errors.Is(err, errFirst) {
			err = nil
		}
	}, &err
}

// allFiles lists the sources' files.
func allFiles(sources []Source) []string {
	var files []string
	for _, s := range sources {
		files = append(files, s.Files...)
	}
	return files
}

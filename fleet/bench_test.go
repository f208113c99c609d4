package fleet

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostpass/hostpass/audit"
)

// benchLog writes n endpoint.join and endpoint.leave records of host to a log of its own.
func benchLog(b *testing.B, host string, n int) Source {
	b.Helper()
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	l, err := audit.OpenWith(path, audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		event := audit.EndpointJoin // a join, then its leave
		if i%2 == 1 {
			event = audit.EndpointLeave
		}
		if err := l.Append(audit.Record{Time: at(i), Event: event, Outcome: audit.OK, Host: host, Driver: "hostpass",
			NetworkID: strings.Repeat("3f1c9a0b", 8), EndpointID: fmt.Sprintf("%064x", i/2)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return Source{Name: path, Files: []string{path}, Host: host}
}

const benchRecords = 100_000

// The baseline: one log of 2n records read by audit.Query, as show reads
// one host.
func BenchmarkQueryOneLog(b *testing.B) {
	src := benchLog(b, "a", 2*benchRecords)
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := audit.Query(src.Files, audit.Filter{}, func(*audit.Entry, []byte) error { n++; return nil }); err != nil || n != 2*benchRecords {
			b.Fatal(err, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*benchRecords), "ns/record")
}

// Two hosts' logs of n records each, merged by time.
func BenchmarkShowTwoLogs(b *testing.B) {
	srcs := []Source{benchLog(b, "a", benchRecords), benchLog(b, "b", benchRecords)}
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := Show(srcs, audit.Filter{}, "", func(Row) error { n++; return nil }); err != nil || n != 2*benchRecords {
			b.Fatal(err, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*benchRecords), "ns/record")
}

// Sessions over two hosts' logs: every record read, joins decoded whole.
func BenchmarkSessionsTwoLogs(b *testing.B) {
	srcs := []Source{benchLog(b, "a", benchRecords), benchLog(b, "b", benchRecords)}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Sessions(srcs, SessionFilter{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*benchRecords), "ns/record")
}

package audit

import (
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// progressLog writes n join records, rotated at maxSize, gzips the oldest
// rotated file (as an operator may) and returns the files in chain order.
func progressLog(t *testing.T, n int) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{MaxSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		err := l.Append(Record{Time: now, Event: EndpointJoin, Outcome: OK, Driver: "hostpass", Host: "node1",
			NetworkID: fmt.Sprintf("%064x", 1), EndpointID: fmt.Sprintf("%064x", i)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := Files(path)
	if err != nil || len(files) < 3 {
		t.Fatalf("want a log rotated at least twice, got %v, %v", files, err)
	}
	plain, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	z, err := os.Create(files[0] + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(z)
	if _, err := zw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(files[0])
	files[0] += ".gz"
	return files
}

// told sums what a Progress is told.
type told struct {
	lines, calls int
	bytes        int64
}

func (t *told) progress(lines int, b int64) { t.lines += lines; t.bytes += b; t.calls++ }

func sizeOf(t *testing.T, files []string) int64 {
	t.Helper()
	var n int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

func lineCount(t *testing.T, files []string) int {
	t.Helper()
	n := 0
	for _, f := range files {
		r, err := openReader(f)
		if err != nil {
			t.Fatal(err)
		}
		err = eachLine(r, func([]byte, bool) error { n++; return nil })
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// Verify tells Progress of every line and of every byte the files hold as
// stored, a gzipped file's compressed bytes included, and nothing more.
func TestVerifyTellsProgress(t *testing.T) {
	files := progressLog(t, 3000)
	var got told
	sum, err := Verify(files, VerifyOptions{Progress: got.progress})
	if err != nil {
		t.Fatal(err)
	}
	if got.lines != sum.Records || got.lines != lineCount(t, files) {
		t.Errorf("progress told %d lines; verify checked %d records, the files hold %d lines", got.lines, sum.Records, lineCount(t, files))
	}
	if want := sizeOf(t, files); got.bytes != want {
		t.Errorf("progress told %d bytes, the files hold %d", got.bytes, want)
	}
	if got.calls < len(files) {
		t.Errorf("progress told %d times for %d files: want a call per batch", got.calls, len(files))
	}
}

// Query tells Progress of every line it reads, matching or not, and a
// network name's first pass reads the log twice.
func TestQueryTellsProgress(t *testing.T) {
	files := progressLog(t, 3000)
	lines, size := lineCount(t, files), sizeOf(t, files)
	for _, tc := range []struct {
		name   string
		f      Filter
		passes int
	}{
		{"endpoint", Filter{Endpoint: fmt.Sprintf("%064x", 7)}, 1},
		{"network", Filter{Network: "no-such-name"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got told
			tc.f.Progress = got.progress
			if err := Query(files, tc.f, func(*Entry, []byte) error { return nil }); err != nil {
				t.Fatal(err)
			}
			if got.lines != tc.passes*lines || got.bytes != int64(tc.passes)*size {
				t.Errorf("progress told %d lines, %d bytes; want %d passes over %d lines, %d bytes", got.lines, got.bytes, tc.passes, lines, size)
			}
		})
	}
}

// BenchmarkVerify1MProgress verifies the 1,000,000-record log of
// BenchmarkVerify1M without and with a Progress hook, alternately, so that
// both see the same machine: each op is one of each, in turn first. Use an
// even -benchtime (6x). The hook does what
// the CLI's does per batch: add up and read the clock. Reported: seconds
// of each, and on/off.
func BenchmarkVerify1MProgress(b *testing.B) {
	files := genMillion(b)
	verify := func(on bool) time.Duration {
		var o VerifyOptions
		var got told
		var last time.Time
		if on {
			o.Progress = func(lines int, n int64) { got.progress(lines, n); last = time.Now() }
		}
		start := time.Now()
		sum, err := Verify(files, o)
		took := time.Since(start)
		if err != nil || on && got.lines != sum.Records {
			b.Fatal(sum, got, err, last)
		}
		return took
	}
	b.ResetTimer()
	var off, on time.Duration
	for i := 0; i < b.N; i++ {
		if i%2 == 0 { // each goes first half the time: the second pays for the first's garbage
			off += verify(false)
			on += verify(true)
		} else {
			on += verify(true)
			off += verify(false)
		}
	}
	b.ReportMetric(off.Seconds()/float64(b.N), "s-off/op")
	b.ReportMetric(on.Seconds()/float64(b.N), "s-on/op")
	b.ReportMetric(on.Seconds()/off.Seconds(), "on/off")
}

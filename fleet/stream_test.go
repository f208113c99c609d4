//go:build unix

package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// Show streams: rows come out while the logs are still being written, so
// it never holds a log to merge it. Each log is a FIFO that gets its first
// records, then the rest only once Show has printed a row; a Show that read
// its inputs to the end first would never print one.
func TestShowStreams(t *testing.T) {
	const first, rest = 5000, 100 // first > a read batch (4096 lines)
	var sources []Source
	var fifos []string
	for _, host := range []string{"a", "b"} {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
		fifos = append(fifos, path)
		sources = append(sources, Source{Name: path, Files: []string{path}, Host: host})
	}
	line := func(host string, i int) string {
		return fmt.Sprintf(`{"time":"%s","seq":%d,"event":"network.create","outcome":"ok","host":"%s","prev":"","hash":""}`+"\n",
			at(i).Format(time.RFC3339Nano), i+1, host)
	}
	printed := make(chan struct{})
	writeErr := make(chan error, len(fifos))
	for i, path := range fifos {
		host := sources[i].Host
		go func() {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				writeErr <- err
				return
			}
			defer f.Close()
			for n := range first {
				if _, err := f.WriteString(line(host, n)); err != nil {
					writeErr <- err
					return
				}
			}
			select {
			case <-printed:
			case <-time.After(time.Minute): // a guard against a hung test, not a measure
				writeErr <- fmt.Errorf("show printed no row while %s was open: it read its inputs to the end first", path)
				return
			}
			for n := first; n < first+rest; n++ {
				if _, err := f.WriteString(line(host, n)); err != nil {
					writeErr <- err
					return
				}
			}
			writeErr <- nil
		}()
	}
	rows := 0
	err := Show(sources, audit.Filter{}, "", func(Row) error {
		if rows++; rows == 1 {
			close(printed)
		}
		return nil
	})
	for range fifos {
		if err := <-writeErr; err != nil {
			t.Fatal(err)
		}
	}
	if err != nil || rows != 2*(first+rest) {
		t.Fatalf("show: %d rows, %v; want %d", rows, err, 2*(first+rest))
	}
}

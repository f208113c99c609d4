//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// bigLog writes n join records, rotated at 64 MiB as the daemon's default
// does, from 64 writers at once (they share fsyncs), on a tmpfs when there
// is one, and returns the log's folder.
func bigLog(t *testing.T, n int) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "hostpass-progress")
	if err != nil {
		dir = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	l, err := audit.OpenWith(filepath.Join(dir, "audit.jsonl"), audit.Options{MaxSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				err := l.Append(audit.Record{Time: now, Event: audit.EndpointJoin, Outcome: audit.OK, Driver: "hostpass", Host: "node1",
					NetworkID:  "3f1c0d9e8b7a69584736251403f2e1d0c9b8a79685746352413f2e1d0c9b8a7",
					EndpointID: fmt.Sprintf("%064x", i), SandboxKey: "/var/run/docker/netns/4c1d2e3f4a5b", Tag: "payments"})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// underPty runs shell command line under a real pseudo-terminal (script
// from util-linux), TERM as given, and returns what the terminal showed:
// stdout and stderr as the user sees them, \n written as \r\n.
func underPty(t *testing.T, term, line string) (shown string, took time.Duration) {
	t.Helper()
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatalf("script (util-linux) runs the command under a pty: %v", err)
	}
	cmd := exec.Command("script", "-qec", line, "/dev/null")
	cmd.Env = append(os.Environ(), "TERM="+term)
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("under a pty: %s: %v\n%q", line, err, out)
	}
	return string(out), time.Since(start)
}

var (
	// A line of progress, with the log's total size (files) or without
	// it (a pipe), as hostpass draws it; \r redraws it in place.
	progressTotal   = regexp.MustCompile(`\r[0-9,]+ records, [0-9.]+/[0-9.]+ MB \(\d+%\), [0-9,]+ records/s, [0-9.]+ MB/s`)
	progressNoTotal = regexp.MustCompile(`\r[0-9,]+ records, [0-9.]+ MB, [0-9,]+ records/s, [0-9.]+ MB/s`)
	// The line blanked, then verify's verdict at the start of the line.
	blankedThenOK = regexp.MustCompile(`\r +\rok: `)
)

// A long verify on a terminal shows progress on stderr, redrawn in place,
// and blanks it before the verdict; with stderr sent to a file, neither
// the file nor the terminal gets any, and with TERM=dumb or --no-progress
// the terminal gets none.
func TestVerifyProgressOnATerminal(t *testing.T) {
	bin := hostpassBin(t)
	dir := bigLog(t, 1_000_000)
	verdict := run(t, bin, "audit", "verify", dir) // stdout and stderr a pipe
	if !strings.HasPrefix(verdict, "ok: 1000000 records in ") || strings.Contains(verdict, "records/s") {
		t.Fatalf("verify to a pipe: %q", verdict)
	}
	want := strings.ReplaceAll(verdict, "\n", "\r\n") // as a pty shows it

	t.Run("files", func(t *testing.T) {
		shown, took := underPty(t, "xterm", bin+" audit verify "+dir)
		if took < 1500*time.Millisecond && !progressTotal.MatchString(shown) {
			t.Skipf("verify of 1,000,000 records took %s: too short to show progress, which waits a second", took)
		}
		if !progressTotal.MatchString(shown) || !blankedThenOK.MatchString(shown) || !strings.HasSuffix(shown, want) {
			t.Fatalf("after %s the terminal showed %q\nwant progress lines, blanked, then %q", took, screenEnd(shown), want)
		}
		if last := progressTotal.FindAllString(shown, -1); !strings.Contains(last[len(last)-1], " MB (") {
			t.Fatalf("last progress line %q", last[len(last)-1])
		}
	})

	t.Run("stderr to a file", func(t *testing.T) {
		errFile := filepath.Join(t.TempDir(), "stderr")
		shown, took := underPty(t, "xterm", bin+" audit verify "+dir+" 2>"+errFile)
		b, err := os.ReadFile(errFile)
		if err != nil || len(b) != 0 || shown != want {
			t.Fatalf("stderr to a file, %s: file %q (%v); the terminal showed %q, want %q", took, b, err, screenEnd(shown), want)
		}
	})

	// A FIFO fed in two halves a second and a half apart: verify waits for
	// the second, so the run lasts long enough to show progress whatever
	// the machine's speed. A FIFO's size is unknown: no total.
	first, err := audit.Files(filepath.Join(dir, "audit.jsonl"))
	if err != nil || len(first) < 2 {
		t.Fatalf("the log's files: %v, %v", first, err)
	}
	lines, err := os.ReadFile(first[0])
	if err != nil {
		t.Fatal(err)
	}
	half := strings.Index(string(lines[len(lines)/2:]), "\n") + len(lines)/2 + 1
	fed := func(t *testing.T, term, flags string) string {
		fifo := filepath.Join(t.TempDir(), "audit.jsonl")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		go func() {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			defer f.Close()
			f.Write(lines[:half])
			time.Sleep(1500 * time.Millisecond)
			f.Write(lines[half:])
		}()
		shown, _ := underPty(t, term, bin+" audit verify "+flags+fifo)
		if !strings.Contains(shown, "ok: ") || !strings.HasSuffix(shown, "\r\n") {
			t.Fatalf("verify of the FIFO: %q", screenEnd(shown))
		}
		return shown
	}
	t.Run("fifo", func(t *testing.T) {
		if shown := fed(t, "xterm", ""); !progressNoTotal.MatchString(shown) || !blankedThenOK.MatchString(shown) {
			t.Fatalf("the terminal showed %q\nwant progress lines without a total, blanked, then the verdict", screenEnd(shown))
		}
	})
	t.Run("TERM=dumb", func(t *testing.T) {
		if shown := fed(t, "dumb", ""); strings.Contains(shown, "records/s") || !strings.HasPrefix(shown, "ok: ") {
			t.Fatalf("TERM=dumb: the terminal showed %q", screenEnd(shown))
		}
	})
	t.Run("--no-progress", func(t *testing.T) {
		if shown := fed(t, "xterm", "--no-progress "); strings.Contains(shown, "records/s") || !strings.HasPrefix(shown, "ok: ") {
			t.Fatalf("--no-progress: the terminal showed %q", screenEnd(shown))
		}
	})
}

// screenEnd is the end of what a terminal showed, enough to read in a failure.
func screenEnd(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

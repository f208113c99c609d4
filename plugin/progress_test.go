package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/progress"
)

// fakeTerminal makes the writers in ttys terminals of 100 columns, and
// progress draw at every batch on a clock that moves a second per reading.
func fakeTerminal(t *testing.T, ttys ...io.Writer) {
	t.Helper()
	oldTerm, oldOpts := terminal, progressOptions
	t.Cleanup(func() { terminal, progressOptions = oldTerm, oldOpts })
	terminal = func(w io.Writer) (int, bool) {
		for _, tty := range ttys {
			if w == tty {
				return 100, true
			}
		}
		return 0, false
	}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	progressOptions = progress.Options{Delay: -1, Every: -1, Now: func() time.Time {
		now = now.Add(time.Second)
		return now
	}}
}

// drawn matches what progress writes on a terminal: lines redrawn in place,
// then blanked, so the cursor ends at the start of an empty line.
var drawn = regexp.MustCompile(`^(\r[0-9,]+ records, [0-9.]+/[0-9.]+ MB \(\d+%\), [0-9,]+ records/s, [0-9.]+ MB/s *)+\r +\r$`)

// lastLine is the last line progress drew.
func lastLine(stderr string) string {
	lines := strings.Split(strings.TrimRight(stderr, "\r "), "\r")
	return strings.TrimRight(lines[len(lines)-1], " ")
}

// On a terminal, verify and show draw progress on stderr and blank it;
// stdout is byte for byte what it is without progress (--no-progress) and
// what a pipe gets.
func TestProgressOnATerminalLeavesStdoutAsItIs(t *testing.T) {
	dir := plainLog(t)
	size := sizeOf(mustFiles(t, dir))
	for _, tc := range []struct {
		name        string
		args        []string
		records     int // lines read, each pass
		passes      int
		stdoutIsTTY bool
	}{
		{"verify", []string{"audit", "verify", dir}, 11, 1, false},
		{"show", []string{"audit", "show", dir}, 11, 1, true},
		{"show --json to a pipe", []string{"audit", "show", "--json", dir}, 11, 1, false},
		{"show --network NAME", []string{"audit", "show", "--network", "prod", dir}, 11, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var plainOut, plainErr bytes.Buffer
			plainCode := run(tc.args, &plainOut, &plainErr)
			if plainErr.Len() != 0 {
				t.Fatalf("not a terminal, and stderr got %q", plainErr.String())
			}

			var out, errOut bytes.Buffer
			if tc.stdoutIsTTY {
				fakeTerminal(t, &errOut, &out)
			} else {
				fakeTerminal(t, &errOut)
			}
			code := run(tc.args, &out, &errOut)
			if code != plainCode || !bytes.Equal(out.Bytes(), plainOut.Bytes()) {
				t.Fatalf("with progress: exit %d, stdout\n%s\nwithout: exit %d, stdout\n%s", code, out.String(), plainCode, plainOut.String())
			}
			if !drawn.MatchString(errOut.String()) {
				t.Fatalf("stderr on a terminal is not progress lines, blanked at the end: %q", errOut.String())
			}
			total := int64(tc.passes) * size
			want := progress.Line(int64(tc.passes*tc.records), total, total, 0)
			want = want[:strings.Index(want, " MB (")] + " MB (100%), "
			if got := lastLine(errOut.String()); !strings.HasPrefix(got, want) {
				t.Errorf("last progress line %q, want it to start %q", got, want)
			}

			var offOut, offErr bytes.Buffer
			args := append(append([]string{}, tc.args[:2]...), append([]string{"--no-progress"}, tc.args[2:]...)...)
			if code := run(args, &offOut, &offErr); code != plainCode || offErr.Len() != 0 || !bytes.Equal(offOut.Bytes(), plainOut.Bytes()) {
				t.Errorf("--no-progress on a terminal: exit %d, stderr %q, stdout\n%s", code, offErr.String(), offOut.String())
			}
		})
	}
}

// verify's FAIL line comes after the progress line is blanked.
func TestProgressIsBlankedBeforeFail(t *testing.T) {
	dir := plainLog(t)
	edit(t, dir, "audit.jsonl", func(lines []string) []string {
		lines[1] = strings.Replace(lines[1], `"outcome":"ok"`, `"outcome":"refused"`, 1)
		return lines
	})
	var want bytes.Buffer
	wantCode := run([]string{"audit", "verify", dir}, &want, io.Discard)
	var out, errOut bytes.Buffer
	fakeTerminal(t, &errOut)
	code := run([]string{"audit", "verify", dir}, &out, &errOut)
	if code != exitFailed || code != wantCode || !bytes.Equal(out.Bytes(), want.Bytes()) || !strings.HasPrefix(out.String(), "FAIL: ") {
		t.Fatalf("exit %d, stdout %q; without progress: exit %d, stdout %q", code, out.String(), wantCode, want.String())
	}
	if !drawn.MatchString(errOut.String()) {
		t.Errorf("stderr: %q", errOut.String())
	}
}

// A pipe is not a terminal: even with progress due at once, not a byte.
func TestProgressNotOnAPipe(t *testing.T) {
	old := progressOptions
	t.Cleanup(func() { progressOptions = old })
	progressOptions = progress.Options{Delay: -1, Every: -1}
	dir := plainLog(t)
	for _, args := range [][]string{{"audit", "verify", dir}, {"audit", "show", dir}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		code := run(args, io.Discard, w)
		w.Close()
		got, _ := io.ReadAll(r)
		r.Close()
		if code != 0 || len(got) != 0 {
			t.Errorf("hostpass %q with stderr a pipe: exit %d, stderr %q", args, code, got)
		}
	}
}

func mustFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := logFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Piped into a pager (hostpass audit show | less), stdout is a pipe and the
// pager owns the terminal: no progress, though stderr is a terminal. A
// regular file as stdout keeps it.
func TestProgressNotUnderAPager(t *testing.T) {
	dir := plainLog(t)
	for _, args := range [][]string{{"audit", "verify", dir}, {"audit", "show", dir}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		var errOut bytes.Buffer
		fakeTerminal(t, &errOut)
		read := make(chan []byte)
		go func() { b, _ := io.ReadAll(r); read <- b }()
		code := run(args, w, &errOut)
		w.Close()
		out := <-read
		r.Close()
		if code != 0 || len(out) == 0 || errOut.Len() != 0 {
			t.Errorf("hostpass %q with stdout a pipe, stderr a terminal: exit %d, stdout %d bytes, stderr %q", args, code, len(out), errOut.String())
		}

		file, err := os.Create(t.TempDir() + "/out")
		if err != nil {
			t.Fatal(err)
		}
		errOut.Reset()
		code = run(args, file, &errOut)
		file.Close()
		if code != 0 || !drawn.MatchString(errOut.String()) {
			t.Errorf("hostpass %q with stdout a file, stderr a terminal: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

// Ctrl-C while the line is shown blanks it and exits 130, as shells expect
// of an interrupted command: a child runs `audit show` on a log fed through
// its stdin, stops at the pipe once it has drawn, and gets SIGINT.
func TestProgressInterruptedBlanksAndExits130(t *testing.T) {
	lines, err := os.ReadFile(filepath.Join(plainLog(t), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	for log.Len() < 2<<20 { // more than one batch of lines, so progress is told before EOF
		log.Write(lines)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestInterruptChildHelper$")
	child.Env = append(os.Environ(), "HOSTPASS_TEST_INTERRUPT_CHILD=1")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stderr, err := child.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	go stdin.Write(log.Bytes())
	var screen []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(screen, []byte("records/s")) {
		n, err := stderr.Read(buf)
		screen = append(screen, buf[:n]...)
		if err != nil {
			t.Fatalf("child's stderr ended before progress was drawn: %v: %q", err, screen)
		}
	}
	child.Process.Signal(os.Interrupt)
	rest, _ := io.ReadAll(stderr)
	screen = append(screen, rest...)
	err = child.Wait()
	if code := child.ProcessState.ExitCode(); code != 130 || !drawn.Match(anyTotal(screen)) {
		t.Fatalf("interrupted: exit %d (%v), want 130; stderr %q, want progress lines blanked at the end", code, err, screen)
	}
}

// anyTotal rewrites a progress line without a total (a pipe) as one with
// it, so that drawn matches it.
func anyTotal(screen []byte) []byte {
	return regexp.MustCompile(`([0-9.]+) MB, `).ReplaceAll(screen, []byte("$1/0.0 MB (0%), "))
}

// TestInterruptChildHelper is the child of the test above: it shows the
// log on its stdin with stderr taken for a terminal.
func TestInterruptChildHelper(t *testing.T) {
	if os.Getenv("HOSTPASS_TEST_INTERRUPT_CHILD") != "1" {
		t.Skip("the child of TestProgressInterruptedBlanksAndExits130")
	}
	fakeTerminal(t, os.Stderr)
	os.Exit(run([]string{"audit", "show", "/dev/stdin"}, io.Discard, os.Stderr))
}

// writes records each write it gets.
type writes struct{ each [][]byte }

func (w *writes) Write(p []byte) (int, error) {
	w.each = append(w.each, append([]byte(nil), p...))
	return len(p), nil
}

// show to a terminal writes whole rows, never a half one that would sit on
// screen and keep progress from drawing after it; and progress draws as
// the batches go by, not only at the end.
func TestShowWritesWholeRowsUnderProgress(t *testing.T) {
	lines, err := os.ReadFile(filepath.Join(plainLog(t), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	for log.Len() < 4<<20 { // batches of 4096 lines, and rows well past the 64 KiB buffer
		log.Write(lines)
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(file, log.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"audit", "show", file}, {"audit", "show", "--json", file}} {
		var out writes
		var errOut bytes.Buffer
		fakeTerminal(t, &errOut, &out)
		if code := run(args, &out, &errOut); code != 0 {
			t.Fatalf("hostpass %q: exit %d, stderr %q", args, code, errOut.String())
		}
		for i, w := range out.each {
			if w[len(w)-1] != '\n' {
				t.Errorf("hostpass %q: write %d of %d to the terminal ends mid-row: ...%q", args, i, len(out.each), w[max(len(w)-60, 0):])
				break
			}
		}
		batches := (bytes.Count(log.Bytes(), []byte("\n")) + 4095) / 4096
		if draws := strings.Count(errOut.String(), " records/s"); draws < batches {
			t.Errorf("hostpass %q: progress drawn %d times over %d batches: %q", args, draws, batches, errOut.String())
		}
	}
}

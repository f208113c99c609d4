package main

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/progress"
)

// terminal says whether a writer is a terminal that can redraw a line, and
// its width; tests replace it, and progressOptions, to draw on a buffer.
var (
	terminal        = progress.Terminal
	progressOptions = progress.Options{}
)

const noProgressUsage = "never show progress on stderr (it is shown only when stderr is a terminal and stdout is not a pipe, once a run has lasted a second)"

// newMeter returns a progress meter on stderr for a read of files, passes
// times over, and the func that ends it; the meter is nil (no progress)
// when off, when stderr is not a terminal, or when stdout is a pipe: a
// pager such as less owns the terminal then, and a line drawn under it
// would garble its screen.
//
// While the meter runs, SIGINT and SIGTERM clear its line and exit
// 128+signal (130 for Ctrl-C), so that an interrupted run leaves no
// half-drawn line on the prompt; the commands it serves only read.
func newMeter(cmd *cobra.Command, off bool, files []string, passes int) (*progress.Meter, func()) {
	if off || isPipe(cmd.OutOrStdout()) {
		return nil, func() {}
	}
	width, ok := terminal(cmd.ErrOrStderr())
	if !ok {
		return nil, func() {}
	}
	o := progressOptions
	o.Width = width
	m := progress.New(cmd.ErrOrStderr(), int64(passes)*sizeOf(files), o)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ended := make(chan struct{})
	go func() {
		select {
		case sig := <-signals:
			m.Done()
			os.Exit(128 + int(sig.(syscall.Signal)))
		case <-ended:
		}
	}()
	return m, func() {
		signal.Stop(signals)
		close(ended)
		m.Done()
	}
}

// isPipe says whether w is a pipe or a socket: what a pager or another
// program reads from. A terminal, a regular file or a non-file is not.
func isPipe(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0
}

// sizeOf is the bytes of files, or -1 if one is not a regular file (a pipe,
// /dev/stdin): its size is unknown until it is read.
func sizeOf(files []string) int64 {
	var n int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil || !st.Mode().IsRegular() {
			return -1
		}
		n += st.Size()
	}
	return n
}

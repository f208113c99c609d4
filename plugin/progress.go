package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/progress"
)

// terminal says whether a writer is a terminal that can redraw a line, and
// its width; tests replace it, and progressOptions, to draw on a buffer.
var (
	terminal        = progress.Terminal
	progressOptions = progress.Options{}
)

const noProgressUsage = "never show progress on stderr (it is shown only when stderr is a terminal, once a run has lasted a second)"

// newMeter returns a progress meter on stderr for a read of files, passes
// times over, or nil (no progress) when off or stderr is not a terminal.
func newMeter(cmd *cobra.Command, off bool, files []string, passes int) *progress.Meter {
	if off {
		return nil
	}
	width, ok := terminal(cmd.ErrOrStderr())
	if !ok {
		return nil
	}
	o := progressOptions
	o.Width = width
	return progress.New(cmd.ErrOrStderr(), int64(passes)*sizeOf(files), o)
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

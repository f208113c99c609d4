package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// The read pipeline: verify and query (show, replay) read a log's files
// line by line, in bounded memory, with the per-line work on every core.

// openReader opens a log file for reading, gunzipping a .gz file.
func openReader(path string) (io.ReadCloser, error) {
	r, _, err := openCounted(path)
	return r, err
}

// openCounted is openReader that also counts the bytes read from the file
// itself (a .gz file's compressed bytes), which is what its size says.
func openCounted(path string) (io.ReadCloser, *counter, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	c := &counter{r: f}
	if !strings.HasSuffix(path, ".gz") {
		return struct {
			io.Reader
			io.Closer
		}{c, f}, c, nil
	}
	z, err := gzip.NewReader(c)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{z, f}, c, nil
}

// counter counts the bytes read through it. One goroutine reads it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Progress is told, after each batch of lines is checked or shown, how many
// lines it held and how many bytes of the file (as stored: a .gz file's
// compressed bytes) were read through it; over a file the bytes add up to
// its size. It is called on the goroutine that called Verify or Query, so
// it needs no lock, and it should return quickly: the read waits for it.
type Progress func(lines int, fileBytes int64)

// maxLine bounds one record; a longer line is reported, not read into memory.
const maxLine = 16 << 20

// errLongLine is returned for a line over maxLine.
var errLongLine = errors.New("line longer than 16 MiB")

// eachLine calls fn with every line of r, without its newline. complete is
// false for a last line that has no newline (a torn write, or a cut file).
func eachLine(r io.Reader, fn func(line []byte, complete bool) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, chunk...)
			if len(long) > maxLine {
				return errLongLine
			}
			continue
		}
		line := chunk
		if long != nil {
			line = append(long, chunk...)
			long = nil
		}
		if err == io.EOF {
			if len(line) > 0 {
				return fn(line, false)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if ferr := fn(bytes.TrimSuffix(line, []byte{'\n'}), true); ferr != nil {
			return ferr
		}
	}
}

// A batch is a run of lines read ahead of the reader that needs them in
// order, so that per-line work (JSON checks, decoding) runs on every core.
type batch struct {
	lines    [][]byte
	complete bool          // false: the last line has no newline
	ready    chan struct{} // closed once work is done

	read    int64     // bytes of the file read once the batch was: for Progress
	invalid int       // verify: first line that is not JSON, or -1
	entries []*Entry  // show: the decoded entry of each matching line, nil for the rest
	records []*Record // QueryRecords: the lines of the events asked for, decoded whole
}

const batchLines = 4096

// batchBytes also ends a batch, so that what is read ahead stays bounded
// however long the lines are.
const batchBytes = 4 << 20

// eachBatch reads the log file at path in batches, starts work on each in a
// goroutine of its own as soon as it is read, and calls fn with the batches
// in order, each once its work is done.
func eachBatch(path string, work func(*batch), fn func(*batch) error) error {
	return eachBatchTold(path, work, fn, nil)
}

// eachBatchTold is eachBatch that tells progress, if not nil, of each batch
// once fn is done with it.
func eachBatchTold(path string, work func(*batch), fn func(*batch) error, progress Progress) error {
	r, c, err := openCounted(path)
	if err != nil {
		return err
	}
	defer r.Close()
	batches := make(chan *batch, runtime.GOMAXPROCS(0)+1)
	stop := make(chan struct{})
	defer close(stop)
	read := make(chan error, 1)
	go func() { read <- readBatches(r, c, batches, stop, work) }()
	var told int64
	for b := range batches {
		<-b.ready
		if err := fn(b); err != nil {
			return err
		}
		if progress != nil {
			progress(len(b.lines), b.read-told)
			told = b.read
		}
	}
	err = <-read
	if progress != nil && err == nil && c.n > told {
		progress(0, c.n-told) // the reader's look-ahead past the last line (the gzip trailer)
	}
	return err
}

// readBatches reads r in batches, starts work on each in its own goroutine
// and sends them, in order, to out; out is closed at the end. c counts the
// file's bytes read so far.
func readBatches(r io.Reader, c *counter, out chan<- *batch, stop <-chan struct{}, work func(*batch)) error {
	defer close(out)
	b := &batch{complete: true}
	send := func() bool {
		b.ready, b.read = make(chan struct{}), c.n
		go func(b *batch) { work(b); close(b.ready) }(b)
		select {
		case out <- b:
		case <-stop:
			return false
		}
		b = &batch{complete: true}
		return true
	}
	size := 0
	err := eachLine(r, func(line []byte, complete bool) error {
		b.lines = append(b.lines, append([]byte(nil), line...))
		b.complete = complete
		if size += len(line); len(b.lines) == batchLines || size >= batchBytes {
			if size = 0; !send() {
				return errStopped
			}
		}
		return nil
	})
	if err == nil && len(b.lines) > 0 {
		send()
	}
	if err == errStopped {
		return nil
	}
	return err
}

var errStopped = errors.New("stopped")

package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Reading where a file's chain ends, in bounded memory whatever the length
// of its last line: the writer needs only the last record's seq (near the
// start of its line) and its hash and epochs (at the end).

const (
	scanChunk = 64 << 10 // read at a time when looking back for a line's start
	shortLine = 64 << 10 // a last line up to this long is decoded whole
	headLen   = 256      // of a longer line, its start: time, seq, event
	tailLen   = 512      // and its end: epoch, next_epoch, prev, hash
)

// chainEnd is what the writer needs of the last record to continue the chain.
type chainEnd struct {
	Seq              uint64
	Hash             string
	Epoch, NextEpoch *uint64
	// Time and Event: what an audit.restart says of the log's end.
	Time  time.Time
	Event Event
}

// tail is where a file's chain ends.
type tail struct {
	size     int64     // bytes up to and including the last newline
	last     *chainEnd // the last complete record, nil if none
	torn     int64     // bytes after size: a partial line, or a failed write
	firstSeq uint64    // seq of the file's first record, 0 if none
}

// readTail finds the last complete record among f's first end bytes (all of
// f when end < 0); everything after it counts as torn.
func readTail(f logFile, end int64) (tail, error) {
	var t tail
	st, err := f.Stat()
	if err != nil {
		return t, err
	}
	if end < 0 || end > st.Size() {
		end = st.Size()
	}
	nl, err := lastIndexByte(f, end, '\n')
	if err != nil {
		return t, err
	}
	t.size, t.torn = nl+1, st.Size()-(nl+1)
	if nl < 0 {
		return t, nil
	}
	start, err := lastIndexByte(f, nl, '\n')
	if err != nil {
		return t, err
	}
	e, err := readEnds(f, start+1, nl)
	if err != nil {
		return t, err
	}
	if t.last, err = e.parse(); err != nil {
		return t, fmt.Errorf("%s: its last line is not an audit record (%v), so the chain cannot continue; check it with `hostpass audit verify`, then move the file away to start a new log", f.Name(), err)
	}
	head := make([]byte, headLen)
	n, _ := f.ReadAt(head, 0)
	_, t.firstSeq, _, _ = fastHead(head[:n])
	return t, nil
}

// lastIndexByte returns the offset of the last c in r's first end bytes, or
// -1, reading backwards a chunk at a time.
func lastIndexByte(r io.ReaderAt, end int64, c byte) (int64, error) {
	buf := make([]byte, scanChunk)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := r.ReadAt(buf[:n], end-n); err != nil && err != io.EOF {
			return 0, err
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] == c {
				return end - n + i, nil
			}
		}
		end -= n
	}
	return -1, nil
}

// ends is a line in bounded memory: whole when it is short, else its head
// and its tail.
type ends struct {
	n    int64
	head []byte // the whole line when n <= shortLine
	tail []byte // the last tailLen bytes (or fewer)
}

// readEnds reads the line at [start, end) of r.
func readEnds(r io.ReaderAt, start, end int64) (ends, error) {
	e := ends{n: end - start}
	size := e.n
	if size > shortLine {
		size = headLen
	}
	e.head = make([]byte, size)
	if _, err := r.ReadAt(e.head, start); err != nil {
		return e, err
	}
	if e.n > shortLine {
		e.tail = make([]byte, tailLen)
		if _, err := r.ReadAt(e.tail, end-tailLen); err != nil {
			return e, err
		}
	}
	return e, nil
}

// add appends p, part of a line read as a stream, keeping the memory bound.
func (e *ends) add(p []byte) {
	e.n += int64(len(p))
	if room := shortLine - len(e.head); room > 0 {
		e.head = append(e.head, p[:min(room, len(p))]...)
	}
	if len(p) >= tailLen {
		e.tail = append(e.tail[:0], p[len(p)-tailLen:]...)
		return
	}
	e.tail = append(e.tail, p...)
	if over := len(e.tail) - tailLen; over > 0 {
		e.tail = append(e.tail[:0], e.tail[over:]...)
	}
}

// parse reads the chain's end from the line: all of it when it is short,
// else the seq from its head and the rest from its tail, laid out as the
// log writes them.
func (e ends) parse() (*chainEnd, error) {
	if e.n <= shortLine {
		return parseLine(e.head)
	}
	t, seq, event, ok := fastHead(e.head)
	if !ok || seq == 0 {
		return nil, fmt.Errorf("a line of %d bytes that does not start with time and seq", e.n)
	}
	body, sum, ok := splitHash(e.tail)
	if !ok {
		return nil, errNoHash
	}
	_, epoch, next, ok := fastEnd(body)
	if !ok {
		return nil, fmt.Errorf("a line of %d bytes that does not end with prev and hash", e.n)
	}
	return &chainEnd{Seq: seq, Hash: sum, Epoch: epoch, NextEpoch: next, Time: t, Event: event}, nil
}

// parseLine decodes a line and checks it carries a hash.
func parseLine(line []byte) (*chainEnd, error) {
	if _, _, ok := splitHash(line); !ok {
		return nil, errNoHash
	}
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, err
	}
	if r.Seq == 0 {
		return nil, errors.New("no seq")
	}
	return &chainEnd{Seq: r.Seq, Hash: r.Hash, Epoch: r.Epoch, NextEpoch: r.NextEpoch, Time: r.Time, Event: r.Event}, nil
}

// lastLine returns the last complete line of a stream (a gzipped file) in
// bounded memory.
func lastLine(r io.Reader) (last ends, ok bool, err error) {
	br := bufio.NewReaderSize(r, scanChunk)
	var cur ends
	for {
		chunk, err := br.ReadSlice('\n')
		if err == nil {
			cur.add(chunk[:len(chunk)-1])
			last, cur = cur, ends{head: last.head[:0], tail: last.tail[:0]}
			ok = true
			continue
		}
		cur.add(chunk)
		switch err {
		case bufio.ErrBufferFull:
		case io.EOF:
			return last, ok, nil
		default:
			return last, ok, err
		}
	}
}

// readLastRecord reads the last complete record of a rotated file: from its
// end, or through the whole stream for a gzipped one.
func readLastRecord(path string) (*chainEnd, error) {
	var e ends
	var ok bool
	if strings.HasSuffix(path, ".gz") {
		r, err := openReader(path)
		if errors.Is(err, io.EOF) {
			return nil, noRecord(path) // zero bytes: not even a gzip header
		}
		if err != nil {
			return nil, err
		}
		defer r.Close()
		if e, ok, err = lastLine(r); err != nil {
			return nil, fmt.Errorf("reading the end of %s: %w", path, err)
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		t, err := readTail(f, -1)
		if err != nil {
			return nil, err
		}
		if t.last != nil {
			return t.last, nil
		}
	}
	if !ok {
		return nil, noRecord(path)
	}
	end, err := e.parse()
	if err != nil {
		return nil, fmt.Errorf("%s: its last line is not an audit record: %v", path, err)
	}
	return end, nil
}

// noRecord is the error for a rotated file without a complete record (an
// empty one, say): it names the file, never a nil cause.
func noRecord(path string) error {
	return fmt.Errorf("%s holds no complete record, so the chain cannot continue from it; check the log with `hostpass audit verify`", path)
}

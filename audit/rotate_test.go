package audit

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func TestRetryingOpenDoesNotReadTheRotatedFileAgain(t *testing.T) {
	path, _ := writeLog(t, 3, 0, "")
	rotated := rotatedName(path, 1)
	os.Rename(path, rotated)
	os.WriteFile(path, nil, 0o640)
	disk := injectFaults(t)
	disk.set(syscall.ENOSPC, nil, nil)
	l := Open(path, nil)
	defer l.Close()
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", err)
	}
	// Same size and time: were it read again, this would break the open.
	st, _ := os.Stat(rotated)
	os.WriteFile(rotated, bytes.Repeat([]byte("?"), int(st.Size())), 0o640)
	os.Chtimes(rotated, st.ModTime(), st.ModTime())

	disk.set(nil, nil, nil)
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
		t.Fatalf("append once the disk has room: %v (the rotated file was read again)", err)
	}
	if recs := readRecords(t, path); len(recs) != 1 || recs[0].Seq != 4 {
		t.Fatalf("current file %+v, want seq 4", recs)
	}
}

// An empty rotated file (plain, or gzipped by an operator) names what is
// wrong with it: the chain cannot continue from a file without a record.
// hostpass 4 said "reading the end of <file>: <nil>" for a plain one, and
// "<file>: EOF" for a zero-byte .gz.
func TestEmptyRotatedFileSaysItHoldsNoRecord(t *testing.T) {
	var emptyGzip bytes.Buffer
	gzip.NewWriter(&emptyGzip).Close()
	for _, c := range []struct {
		name    string
		suffix  string
		content []byte
	}{
		{"plain, empty", "", nil},
		{"gzipped, zero bytes", ".gz", nil},
		{"gzipped, no line", ".gz", emptyGzip.Bytes()},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			rotated := rotatedName(path, 1) + c.suffix
			os.WriteFile(rotated, c.content, 0o640)
			err := Open(path, nil).Append(Record{Event: NetworkCreate, Outcome: OK})
			want := "audit log unavailable: " + rotated + " holds no complete record, so the chain cannot continue from it; check the log with `hostpass audit verify`"
			if !errors.Is(err, ErrUnavailable) || err.Error() != want {
				t.Fatalf("got %v\nwant %s", err, want)
			}
		})
	}
}

// A reopened log reads its current file's first seq from disk (fastHead,
// the parser verify uses), and a rotation names the file by it.
func TestRotationAfterReopenNamesTheFileByItsFirstSeq(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for i, n := range []int{3, 2, 1} { // seq 1-3, rotated; 4-5; reopened, 6
		l := Open(path, nil)
		for j := 0; j < n; j++ {
			if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); err != nil {
				t.Fatal(err)
			}
		}
		if i != 1 {
			if err := l.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
	}
	files, _ := Files(path)
	want := []string{rotatedName(path, 1), rotatedName(path, 4), path}
	if !slices.Equal(files, want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	if recs := readRecords(t, files[1]); len(recs) != 3 || recs[0].Seq != 4 {
		t.Fatalf("%s holds %+v, want seq 4 to 6", files[1], recs)
	}
}

package audit

import (
	"bytes"
	"errors"
	"os"
	"strings"
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
	if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); !errors.Is(err, syscall.ENOSPC) && !strings.Contains(err.Error(), "no space") {
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

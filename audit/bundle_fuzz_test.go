package audit

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
)

var (
	fuzzOnce   sync.Once
	fuzzLog    *handLog
	fuzzBundle []byte
)

// FuzzCheckBundle: whatever bytes a bundle holds, ReadBundle and
// CheckBundle do not panic, and a bundle they accept holds only lines of
// the log, each at its own leaf.
func FuzzCheckBundle(f *testing.F) {
	fuzzOnce.Do(func() {
		var log string
		fuzzLog, log = story(f)
		b, err := Prove([]string{log}, ProveQuery{Container: "web"})
		if err != nil {
			f.Fatal(err)
		}
		fuzzBundle, _ = json.Marshal(b)
	})
	f.Add(fuzzBundle)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"origin":"x","records":[{"leaf":0,"line":"{}","checkpoint":9,"proof":["x"]}],"checkpoints":[{"seq":1,"note":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ReadBundle(bytes.NewReader(data))
		if err != nil {
			return
		}
		p, err := CheckBundle(b, fuzzLog.pub())
		if err != nil {
			return
		}
		for i, r := range b.Records {
			if r.Leaf < 0 || int(r.Leaf) >= len(fuzzLog.lines) || string(fuzzLog.lines[r.Leaf]) != r.Line {
				t.Fatalf("record %d accepted (leaf %d) is not the log's line there:\n%s", i, r.Leaf, r.Line)
			}
		}
		_ = p.Sessions()
	})
}

// FuzzReadCheckpoints: whatever a checkpoint file holds, reading it and
// proving what it holds against a log does not panic.
func FuzzReadCheckpoints(f *testing.F) {
	l := standard(f)
	log := l.write(f.TempDir())
	f.Add([]byte(checkpointOf2(l, 6)))
	f.Add([]byte(syslogLine(l.lines[5], 6) + "\n"))
	f.Add([]byte("hostpass/\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "c")
		if err := writeBytes(path, data); err != nil {
			t.Fatal(err)
		}
		cs, err := ReadCheckpoints(path)
		if err != nil {
			return
		}
		Verify([]string{log}, VerifyOptions{Pub: l.pub(), Checkpoints: cs})
	})
}

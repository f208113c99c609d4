package audit

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The verifier against the real writer (Options.SignKey): a signed log
// written by two runs of a Log, a clean stop between them, verified with
// FILE.pub alone, against its own checkpoints as a collector would hold
// them, and proven for one container.
func TestVerifyRealSignedLog(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sign.key")
	if _, err := NewSignKeyFile(key, "node1"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.jsonl")
	web := &Container{ID: strings.Repeat("c0ffee12", 8), Name: "web"}
	run := func(recs []Record) {
		l, err := OpenWith(path, Options{SignKey: key, CheckpointRecords: 7, EpochRecords: 20, EpochInterval: time.Hour, MaxSize: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			r.Time = time.Now().UTC()
			if err := l.Append(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ep := func(e Event) Record {
		return Record{Event: e, Outcome: OK, Driver: "hostpass", NetworkID: "net1", EndpointID: "ep1"}
	}
	var first []Record
	for i := 0; i < 40; i++ {
		first = append(first, Record{Event: EndpointJoin, Outcome: OK, EndpointID: "other"})
	}
	attr := ep(EndpointAttribute)
	attr.Container = web
	first = append(first, ep(EndpointCreate), ep(EndpointJoin), attr)
	run(first)
	run(append([]Record{ep(EndpointLeave), ep(EndpointDelete)}, first[:30]...))

	pub, err := ReadSignPub(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	files, err := Files(path) // rotated at 8 KiB
	if err != nil || len(files) < 3 {
		t.Fatalf("files %v, %v; want the log rotated", files, err)
	}
	sum, err := Verify(files, VerifyOptions{Pub: pub, Heartbeat: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Signed || !sum.RootsChecked || sum.KeyCerts < 3 || sum.Checkpoints < 10 || sum.Restarts != 1 || sum.UncleanRestarts != 0 || len(sum.HeartbeatGaps) != 0 {
		t.Errorf("summary %+v", sum)
	}

	// Every checkpoint of the log, as a collector would hold them.
	var collected []CollectedCheckpoint
	for _, f := range files {
		cs, err := ReadCheckpoints(f)
		if err != nil {
			t.Fatal(err)
		}
		collected = append(collected, cs...)
	}
	if _, err := Verify(files, VerifyOptions{Pub: pub, Checkpoints: collected}); err != nil {
		t.Fatal(err)
	}
	bundle, err := Prove(files, ProveQuery{Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := CheckBundle(bundle, pub)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Sessions(); len(s) != 1 || !strings.HasPrefix(s[0], "container web (c0ffee12c0ff) was attached to hostpass network net1 (endpoint ep1) on host ") || !strings.Contains(s[0], "endpoint.leave") {
		t.Errorf("sessions %q", s)
	}
	// The tail cut: the last two files removed.
	_, err = Verify(files[:len(files)-2], VerifyOptions{Pub: pub, Checkpoints: collected})
	if p, ok := err.(*Problem); !ok || p.Kind != CutTail {
		t.Errorf("cut tail: got %v", err)
	}

}

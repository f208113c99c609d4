package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/errclass"
)

func create(d *Driver, id string, generic map[string]any) error {
	return d.CreateNetwork(&network.CreateNetworkRequest{NetworkID: id, Options: map[string]any{genericOptions: generic}})
}

func TestTagLimit(t *testing.T) {
	d, logPath := newDriver(t)
	err := create(d, netID(1), map[string]any{"tag": strings.Repeat("t", 600_000)})
	if !errclass.IsInvalidParameter(err) || err.Error() != `network option "tag" is 600000 bytes; the limit is 256 bytes` {
		t.Fatalf("got %v, want an invalid parameter naming the limit", err)
	}
	if err := create(d, netID(2), map[string]any{"tag": strings.Repeat("t", maxTag)}); err != nil {
		t.Errorf("a tag of %d bytes: %v", maxTag, err)
	}
	recs := records(t, logPath)
	if r := recs[0]; r.Outcome != audit.Refused || r.Error != err.Error() || len(r.Truncated) == 0 {
		t.Errorf("refusal record %+v, want refused with the error, cut (truncated %v)", r, r.Truncated)
	}
	if b, _ := os.ReadFile(logPath); len(b) > 2*audit.MaxRecord {
		t.Errorf("two records take %d bytes", len(b))
	}
	if _, ok := d.Knows(netID(1)); ok {
		t.Error("the refused network is known")
	}
}

func TestTagIsStoredOnce(t *testing.T) {
	d, logPath := newDriver(t)
	if err := create(d, netID(1), map[string]any{"tag": "payments"}); err != nil {
		t.Fatal(err)
	}
	r := records(t, logPath)[0]
	if r.Tag != "payments" || r.Options[genericOptions] != nil {
		t.Errorf("record tag %q options %v, want the tag in tag only", r.Tag, r.Options)
	}
	state, _ := os.ReadFile(filepath.Join(d.cfg.StateDir, stateFile))
	if strings.Count(string(state), "payments") != 1 {
		t.Errorf("state stores the tag %d times:\n%s", strings.Count(string(state), "payments"), state)
	}
}

func TestHostileOptionNameStaysBounded(t *testing.T) {
	d, logPath := newDriver(t)
	key := strings.Repeat("k", 1<<20)
	err := create(d, netID(1), map[string]any{key: "v"})
	want := `unknown network option "` + strings.Repeat("k", maxQuoted) + `"… (1048576 bytes); accepted options: tag`
	if err == nil || err.Error() != want {
		t.Fatalf("got %.200v, want %s", err, want)
	}
	if b, _ := os.ReadFile(logPath); len(b) > audit.MaxRecord+1 {
		t.Errorf("the refusal record is %d bytes", len(b))
	}
}

func TestAdoptionChecksTheRequest(t *testing.T) {
	d, logPath := newDriver(t)
	for _, tc := range []struct{ id, ep, want string }{
		{"", "e", "Join request has no NetworkID"},
		{"not-a-docker-id", "e", `Join request names network "not-a-docker-id", which hostpass has no record of and will not adopt: Docker's network IDs are 64 lowercase hex digits, or 25 lowercase letters and digits for a swarm-scope network`},
		{strings.Repeat("A", 64), "e", "will not adopt"},
		{strings.Repeat("a", 64), "", "Join request has no EndpointID"},
	} {
		_, err := d.Join(&network.JoinRequest{NetworkID: tc.id, EndpointID: tc.ep})
		if !errclass.IsInvalidParameter(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Join(%q, %q) = %v, want an invalid parameter with %q", tc.id, tc.ep, err, tc.want)
		}
		if _, ok := d.Knows(tc.id); ok {
			t.Errorf("Join(%q, %q) was refused, but adopted the network", tc.id, tc.ep)
		}
	}
	if _, err := os.Stat(filepath.Join(d.cfg.StateDir, adoptedFile)); !os.IsNotExist(err) {
		t.Errorf("refused calls wrote adoptions (%v)", err)
	}
	for _, r := range records(t, logPath) {
		if r.Event == audit.EndpointJoin && (r.Outcome != audit.Refused || r.Adopted != nil) {
			t.Errorf("record %+v, want refused, no adopted flag", r)
		}
	}
}

func TestAdoptionAppendsAndSurvivesRestart(t *testing.T) {
	d, _ := newDriver(t)
	made := netID(0xade)
	if err := create(d, made, map[string]any{"tag": "t"}); err != nil {
		t.Fatal(err)
	}
	stateBefore, _ := os.Stat(filepath.Join(d.cfg.StateDir, stateFile))
	ids := []string{strings.Repeat("1", 64), strings.Repeat("2", 64), strings.Repeat("3", 64)}
	for _, id := range ids {
		if _, err := d.Join(&network.JoinRequest{NetworkID: id, EndpointID: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	stateAfter, _ := os.Stat(filepath.Join(d.cfg.StateDir, stateFile))
	if !os.SameFile(stateBefore, stateAfter) || stateAfter.ModTime() != stateBefore.ModTime() {
		t.Error("adoptions rewrote networks.json")
	}
	journal, _ := os.ReadFile(filepath.Join(d.cfg.StateDir, adoptedFile))
	if strings.Count(string(journal), "\n") != 3 {
		t.Errorf("adoption lines:\n%s, want 3", journal)
	}
	// A crash in the middle of an append leaves a partial line: skipped.
	f, _ := os.OpenFile(filepath.Join(d.cfg.StateDir, adoptedFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"44`)
	f.Close()

	again, err := New(Config{StateDir: d.cfg.StateDir, Audit: d.cfg.Audit, Log: d.cfg.Log})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append(ids, made) {
		if _, ok := again.Knows(id); !ok {
			t.Errorf("after a restart %s is not known", id)
		}
	}
	// A full save folds the adoptions into networks.json.
	again.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: ids[0]})
	if _, err := os.Stat(filepath.Join(d.cfg.StateDir, adoptedFile)); !os.IsNotExist(err) {
		t.Errorf("adoption lines left after a full save (%v)", err)
	}
	third, err := New(Config{StateDir: d.cfg.StateDir, Audit: d.cfg.Audit, Log: d.cfg.Log})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := third.Knows(ids[0]); ok {
		t.Error("a deleted adopted network came back")
	}
	if _, ok := third.Knows(ids[1]); !ok {
		t.Error("an adopted network was lost in the fold")
	}
}

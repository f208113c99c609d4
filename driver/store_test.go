package driver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/errclass"
)

// hookFunc is a logrus hook that calls itself on every entry.
type hookFunc func(*logrus.Entry)

func (h hookFunc) Levels() []logrus.Level     { return logrus.AllLevels }
func (h hookFunc) Fire(e *logrus.Entry) error { h(e); return nil }

// logged collects what d logs from now on.
func logged(d *Driver) func() []string {
	var mu sync.Mutex
	var lines []string
	d.cfg.Log.Logger.AddHook(hookFunc(func(e *logrus.Entry) {
		mu.Lock()
		defer mu.Unlock()
		line := e.Message
		if err, ok := e.Data[logrus.ErrorKey]; ok {
			line += ": " + fmt.Sprint(err)
		}
		lines = append(lines, line)
	}))
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}

func restart(t *testing.T, d *Driver) *Driver {
	t.Helper()
	again, err := New(d.cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	return again
}

func join(d *Driver, id string) error {
	_, err := d.Join(&network.JoinRequest{NetworkID: id, EndpointID: "e"})
	return err
}

// wholeLines fails unless every line of the adoption file is an adopted
// network.
func wholeLines(t *testing.T, d *Driver) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.cfg.StateDir, adoptedFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("adoption file ends in a partial line: %q", b[max(0, len(b)-40):])
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	for i, line := range lines {
		var n Network
		if err := json.Unmarshal(line, &n); err != nil || !isNetworkID(n.ID) {
			t.Errorf("adoption file line %d is %q (%v)", i+1, line, err)
		}
	}
	return lines
}

// A full disk on the state directory: adoptions still serve the call, and
// leave the adoption file whole, so the next start reads it.
func TestFullDiskLeavesTheAdoptionFileWhole(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a 64 KiB tmpfs as the full disk")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	d, _ := newDriver(t)
	d.cfg.StateDir = filepath.Join(mnt, "state")
	d.store = newStore(d.cfg.StateDir)
	logs := logged(d)
	if err := join(d, netID(1)); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	f, _ := os.Create(filler)
	f.Write(make([]byte, 1<<20)) // fails once the disk is full, as meant
	f.Close()
	for i := 2; i < 100; i++ {
		if err := join(d, netID(i)); err != nil {
			t.Fatalf("join %d with the disk full: %v, want served", i, err)
		}
	}
	if !strings.Contains(strings.Join(logs(), "\n"), "cannot save the adopted network") {
		t.Fatal("no adoption failed: the disk never filled")
	}
	wholeLines(t, d)
	os.Remove(filler) // the operator frees space
	if err := join(d, netID(100)); err != nil {
		t.Fatal(err)
	}
	lines := wholeLines(t, d)
	again := restart(t, d)
	for _, l := range logs() {
		if strings.Contains(l, "skipped") {
			t.Errorf("restart skipped a line: %s", l)
		}
	}
	for _, id := range []string{netID(1), netID(100)} {
		if _, ok := again.Knows(id); !ok {
			t.Errorf("after the restart %s is not known", id)
		}
	}
	t.Logf("100 adoptions, 2 with space: %d lines saved", len(lines))
}

// failingFile writes only half of what it is given, as write(2) does on a
// full disk, and may fail to be truncated too.
type failingFile struct {
	*os.File
	truncateErr error
}

func (f failingFile) Write(p []byte) (int, error) {
	n, _ := f.File.Write(p[:len(p)/2])
	return n, syscall.ENOSPC
}

func (f failingFile) Truncate(size int64) error {
	if f.truncateErr != nil {
		return f.truncateErr
	}
	return f.File.Truncate(size)
}

func TestFailedAdoptionIsCutBack(t *testing.T) {
	d, _ := newDriver(t)
	logs := logged(d)
	open := d.store.openAppend
	failing := func(truncateErr error) {
		d.store.openAppend = func(path string) (appendFile, error) {
			f, err := open(path)
			if err != nil {
				return nil, err
			}
			return failingFile{f.(*os.File), truncateErr}, nil
		}
	}
	join(d, netID(1))
	failing(nil)
	if err := join(d, netID(2)); err != nil {
		t.Fatalf("a failed adoption refused the call: %v", err)
	}
	d.store.openAppend = open
	join(d, netID(3))
	if lines := wholeLines(t, d); len(lines) != 2 {
		t.Errorf("adoption file has %d lines, want 2 (the failed one cut off)", len(lines))
	}
	again := restart(t, d)
	for id, want := range map[string]bool{netID(1): true, netID(2): false, netID(3): true} {
		if _, ok := again.Knows(id); ok != want {
			t.Errorf("after a restart, Knows(%s) = %v, want %v", id, ok, want)
		}
	}

	// A partial line that cannot be cut off: nothing is appended after it
	// until a save replaces the file.
	failing(syscall.EIO)
	join(d, netID(4))
	d.store.openAppend = open
	before, _ := os.ReadFile(filepath.Join(d.cfg.StateDir, adoptedFile))
	join(d, netID(5))
	if after, _ := os.ReadFile(filepath.Join(d.cfg.StateDir, adoptedFile)); !bytes.Equal(before, after) {
		t.Errorf("an adoption was appended after a partial line:\n%s", after)
	}
	if l := logs(); !strings.Contains(l[len(l)-1], "ends in a partial line that could not be cut off") {
		t.Errorf("last log %q, want the reason the adoption was not saved", l[len(l)-1])
	}
	if err := create(d, netID(6), nil); err != nil {
		t.Fatal(err)
	}
	join(d, netID(7))
	wholeLines(t, d)
	again = restart(t, d)
	for i := 1; i <= 7; i++ {
		if _, ok := again.Knows(netID(i)); !ok && i != 2 {
			t.Errorf("after the save and a restart, network %d is not known", i)
		}
	}
}

func TestUnreadableAdoptionLinesAreSkipped(t *testing.T) {
	d, _ := newDriver(t)
	logs := logged(d)
	os.MkdirAll(d.cfg.StateDir, 0o750)
	content := "oops\n" + `{"id":"` + netID(1) + `"}` + "\n" + `{"id":"net1"}` + "\n" + `{"id":"` + netID(2) + `","adopted":true}` + "\n" + `{"id":"` + netID(3)
	os.WriteFile(filepath.Join(d.cfg.StateDir, adoptedFile), []byte(content), 0o640)
	again := restart(t, d)
	for id, want := range map[string]bool{netID(1): true, netID(2): true, netID(3): false, "net1": false} {
		if _, ok := again.Knows(id); ok != want {
			t.Errorf("Knows(%s) = %v, want %v", id, ok, want)
		}
	}
	path := filepath.Join(d.cfg.StateDir, adoptedFile)
	want := []string{
		path + ` line 1 (4 bytes) is not an adopted network (invalid character 'o' looking for beginning of value): skipped; the network is adopted again at its next call`,
		path + ` line 3 (13 bytes) is not an adopted network (id "net1" is not a Docker network ID): skipped; the network is adopted again at its next call`,
		path + ` line 5 (71 bytes) is not an adopted network (unexpected end of JSON input): skipped; the network is adopted again at its next call`,
	}
	if got := logs(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if tag, internal, adopted, _ := again.Lookup(netID(1)); tag != "" || internal || !adopted {
		t.Errorf("an adoption line read as tag %q internal %v adopted %v", tag, internal, adopted)
	}
}

// networks.json holds what cannot be recovered (tags, --internal): a
// corrupt one stops the start rather than being overwritten.
func TestCorruptStateStopsStart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, stateFile), []byte(`[{"id":"`+netID(1)), 0o640)
	_, err := New(Config{StateDir: dir})
	want := "hostpass state " + filepath.Join(dir, stateFile) + " is not valid JSON (unexpected end of JSON input): fix it or move it away; hostpass will not overwrite it"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestAdoptionIsBounded(t *testing.T) {
	d, logPath := newDriver(t)
	logs := logged(d)
	for i := 1; i <= maxAdopted; i++ {
		if _, err := d.network("Join", netID(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Beyond the limit: served and audited as adopted, not remembered.
	for i := maxAdopted + 1; i <= maxAdopted+3; i++ {
		if err := join(d, netID(i)); err != nil {
			t.Fatalf("a join beyond the limit: %v, want served", err)
		}
		if _, ok := d.Knows(netID(i)); ok {
			t.Errorf("network %d beyond the limit of %d is remembered", i, maxAdopted)
		}
	}
	recs := records(t, logPath)
	if len(recs) != 3 {
		t.Fatalf("%d records, want the 3 joins", len(recs))
	}
	for _, r := range recs {
		if r.Outcome != audit.OK || r.Adopted == nil || !*r.Adopted {
			t.Errorf("join beyond the limit recorded %+v, want ok and adopted", r)
		}
	}
	if n := strings.Count(strings.Join(logs(), "\n"), "not remembered"); n != 1 {
		t.Errorf("the limit was logged %d times, want once", n)
	}
	if lines := wholeLines(t, d); len(lines) != maxAdopted {
		t.Errorf("adoption file has %d lines, want %d", len(lines), maxAdopted)
	}
	// Deleting one makes room for one.
	d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID(1)})
	join(d, netID(maxAdopted+1))
	join(d, netID(maxAdopted+2))
	if _, ok := d.Knows(netID(maxAdopted + 1)); !ok {
		t.Error("after a delete, a new adoption is not remembered")
	}
	if _, ok := d.Knows(netID(maxAdopted + 2)); ok {
		t.Error("two adoptions remembered in the room of one")
	}
	// Created networks do not count, and the state stays bounded.
	if err := create(d, netID(0), nil); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(d.cfg.StateDir, stateFile))
	if st.Size() > 600<<10 {
		t.Errorf("networks.json is %d bytes", st.Size())
	}
	t.Logf("networks.json with %d adopted networks and one created: %d bytes", maxAdopted, st.Size())

	// A state saved with more (an older hostpass) is cut to the limit at start.
	f, _ := os.OpenFile(filepath.Join(d.cfg.StateDir, adoptedFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	for i := 0; i < 5; i++ {
		fmt.Fprintf(f, `{"id":"%s","adopted":true}`+"\n", netID(1<<20+i))
	}
	f.Close()
	again := restart(t, d)
	if again.adopted != maxAdopted || len(again.networks) != maxAdopted+1 {
		t.Errorf("after a restart: %d adopted of %d networks, want %d of %d", again.adopted, len(again.networks), maxAdopted, maxAdopted+1)
	}
	if l := logs(); !strings.Contains(l[len(l)-1], "more adopted networks than hostpass remembers") {
		t.Errorf("last log %q, want the warning that adoptions were dropped", l[len(l)-1])
	}
}

// An adoption that loses the race to DeleteNetwork must not write the
// network back after the delete's save: it would come back at restart.
// The log hook runs DeleteNetwork at the point the race needs, between the
// adoption in memory and its save.
func TestAdoptionRacingDeleteDoesNotBringItBack(t *testing.T) {
	d, _ := newDriver(t)
	id := netID(1)
	var once sync.Once
	d.cfg.Log.Logger.AddHook(hookFunc(func(e *logrus.Entry) {
		if strings.HasPrefix(e.Message, "adopting a network") {
			once.Do(func() { d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: id}) })
		}
	}))
	if err := join(d, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Knows(id); ok {
		t.Fatal("the delete did not run in the middle of the adoption")
	}
	if _, ok := restart(t, d).Knows(id); ok {
		t.Error("a network deleted during its adoption came back at restart")
	}
}

// Adoptions and deletes in any interleaving: what a restart loads is what
// the driver knew.
func TestAdoptionsAndDeletesConcurrently(t *testing.T) {
	d, _ := newDriver(t)
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		id := netID(i)
		wg.Add(2)
		go func() { defer wg.Done(); join(d, id) }()
		go func() { defer wg.Done(); d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: id}) }()
	}
	wg.Wait()
	again := restart(t, d)
	for i := 0; i < 100; i++ {
		_, before := d.Knows(netID(i))
		if _, after := again.Knows(netID(i)); after != before {
			t.Errorf("network %d: known %v before the restart, %v after", i, before, after)
		}
	}
}

func TestCreateNetworkTakesOnlyDockerIDs(t *testing.T) {
	d, logPath := newDriver(t)
	err := create(d, "net1", nil)
	want := `CreateNetwork request names network "net1": Docker's network IDs are 64 lowercase hex digits, or 25 lowercase letters and digits for a swarm-scope network`
	if !errclass.IsInvalidParameter(err) || err.Error() != want {
		t.Fatalf("got %v, want an invalid parameter %q", err, want)
	}
	if long := strings.Repeat("x", 1<<20); create(d, long, nil).Error() != `CreateNetwork request names network "`+strings.Repeat("x", maxQuoted)+`"… (1048576 bytes): Docker's network IDs are 64 lowercase hex digits, or 25 lowercase letters and digits for a swarm-scope network` {
		t.Error("a long ID is not cut in the error")
	}
	if _, ok := d.Knows("net1"); ok {
		t.Error("the refused network is known")
	}
	if _, err := os.Stat(filepath.Join(d.cfg.StateDir, stateFile)); !os.IsNotExist(err) {
		t.Errorf("a refused CreateNetwork wrote the state (%v)", err)
	}
	recs := records(t, logPath)
	if r := recs[0]; r.Outcome != audit.Refused || r.Error != want || r.NetworkID != "net1" {
		t.Errorf("record %+v, want refused naming the ID", r)
	}
	if r := recs[1]; len(r.NetworkID) > audit.MaxRecord {
		t.Errorf("the refusal of a 1 MiB ID is recorded with it in full")
	}
}

func TestDeletingAnUnknownNetworkDoesNotRewriteTheState(t *testing.T) {
	d, logPath := newDriver(t)
	if err := create(d, netID(1), nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(filepath.Join(d.cfg.StateDir, stateFile))
	for i := 2; i < 5; i++ {
		d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID(i)})
	}
	after, _ := os.Stat(filepath.Join(d.cfg.StateDir, stateFile))
	if !os.SameFile(before, after) {
		t.Error("deleting networks hostpass does not know rewrote networks.json")
	}
	if recs := records(t, logPath); len(recs) != 4 || recs[3].Event != audit.NetworkDelete || recs[3].Outcome != audit.OK {
		t.Errorf("records %+v, want the create and 3 deletes, ok", recs)
	}
	d.DeleteNetwork(&network.DeleteNetworkRequest{NetworkID: netID(1)})
	if _, ok := restart(t, d).Knows(netID(1)); ok {
		t.Error("a deleted network came back at restart")
	}
}

// Swarm-scope networks carry swarmkit's IDs (25 base-36 characters), not 64
// hex digits; both forms are created and adopted, and near misses are not.
func TestSwarmScopeNetworkIDsAreDockerIDs(t *testing.T) {
	d, _ := newDriver(t)
	swarm := "qsnvykz5kt7r0pdl9srn0krg4"
	if err := create(d, swarm, nil); err != nil {
		t.Fatalf("CreateNetwork of a swarm-scope ID: %v", err)
	}
	adopted := "0123456789abcdefghijklmno"
	if _, err := d.Join(&network.JoinRequest{NetworkID: adopted, EndpointID: "e"}); err != nil {
		t.Fatalf("Join on an unknown swarm-scope ID: %v", err)
	}
	for _, id := range []string{"QSNVYKZ5KT7R0PDL9SRN0KRG4", "qsnvykz5kt7r0pdl9srn0krg", "qsnvykz5kt7r0pdl9srn0krg4-"} {
		if err := create(d, id, nil); err == nil {
			t.Errorf("CreateNetwork(%q) accepted", id)
		}
	}
}

//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// gapOf is a watch.gap record's window.
type gapOf struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Covered bool      `json:"covered"`
}

// gaps returns the watch.gap records' windows, with their records.
func gaps(t testing.TB, recs []record) ([]gapOf, []record) {
	t.Helper()
	var out []gapOf
	var rs []record
	for _, r := range recs {
		if r.Event != "watch.gap" {
			continue
		}
		var g struct{ Gap *gapOf }
		if err := json.Unmarshal([]byte(r.line), &g); err != nil || g.Gap == nil {
			t.Fatalf("watch.gap without a gap (%v):\n%s", err, r.line)
		}
		out, rs = append(out, *g.Gap), append(rs, r)
	}
	return out, rs
}

// lifeInGap runs a --network host container that starts, ends and is
// removed inside a window, and returns its ID and when (at the latest) it
// was gone.
func lifeInGap(t *testing.T, e *engine, name string) (id string, gone time.Time) {
	t.Helper()
	id = e.docker(t, "run", "-d", "--rm", "--name", name, "--network", "host", image, "true")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := e.dockerTry("inspect", id); err != nil {
			return id, time.Now().UTC() // ended and removed
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there after 30 s", name)
		}
	}
}

// byID selects the records about container id.
func byID(id string) func(record) bool {
	return func(r record) bool { return r.Container != nil && r.Container.ID == id }
}

// Three windows in which hostpass's watcher was not following a real
// dockerd's events, each with a --network host container that lived and
// was removed inside it. One watch.gap per window, containing that life;
// covered exactly when Docker's replay gave the container's events:
//   - hostpass stopped, a few events: Docker still holds them, the replay
//     gives the container's host.join and host.leave, covered;
//   - hostpass stopped, then more events than Docker keeps (256, of any
//     kind: volume creations here): the container is lost, not covered;
//   - dockerd restarted under a running hostpass: its history is gone,
//     not covered.
func TestWatcherGap(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.start(t)
	p.sentinel(t, "before")

	// Window 1: hostpass down, the replay holds the window.
	p.stop(t)
	stopped := time.Now().UTC()
	id1, gone1 := lifeInGap(t, e, "in-gap-1")
	p.start(t)
	p.sentinel(t, "after-1")
	recs := waitAudit(t, p.audit, "a watch.gap", func(r []record) bool { g, _ := gaps(t, r); return len(g) == 1 })
	g, rs := gaps(t, recs)
	if !g[0].From.Before(stopped) || !g[0].To.After(gone1) {
		t.Errorf("window %v to %v, want it to contain hostpass's stop (%v) and the container's life up to %v:\n%s", g[0].From, g[0].To, stopped, gone1, rs[0].line)
	}
	life := filter(recs, byID(id1))
	if !g[0].Covered || len(filter(life, byEvent("host.join", "ok"))) != 1 || len(filter(life, byEvent("host.leave", "ok"))) != 1 {
		t.Errorf("covered %v; the replay gave %d records of the container, want covered and its host.join and host.leave:\n%s", g[0].Covered, len(life), dumpRecords(append(rs, life...)))
	}
	for _, r := range life {
		if r.ObservedLate {
			t.Errorf("a record of the container observed late, when the replay gave its events:\n%s", r.line)
		}
	}

	// Window 2: hostpass down, more events than Docker keeps.
	p.stop(t)
	stopped = time.Now().UTC()
	id2, gone2 := lifeInGap(t, e, "in-gap-2")
	for i := 0; i < 260; i++ {
		if code, msg := e.api(t, "/volumes/create", []byte(fmt.Sprintf(`{"Name":"gap-%d"}`, i))); code != 201 {
			t.Fatalf("volume create: %d %s", code, msg)
		}
	}
	p.start(t)
	p.sentinel(t, "after-2")
	recs = waitAudit(t, p.audit, "a second watch.gap", func(r []record) bool { g, _ := gaps(t, r); return len(g) == 2 })
	g, rs = gaps(t, recs)
	if !g[1].From.Before(stopped) || !g[1].To.After(gone2) {
		t.Errorf("window %v to %v, want it to contain hostpass's stop (%v) and the container's life up to %v:\n%s", g[1].From, g[1].To, stopped, gone2, rs[1].line)
	}
	if life := filter(recs, byID(id2)); g[1].Covered || len(life) != 0 || !strings.Contains(rs[1].Detail, "no longer held") {
		t.Errorf("covered %v, %d records of the container: want not covered, saying Docker no longer held the last event, and the container lost:\n%s", g[1].Covered, len(life), dumpRecords(append(rs[1:], life...)))
	}

	// Window 3: dockerd restarts under hostpass; a container lives and is
	// removed in the window only if the watcher has not subscribed again
	// by then, so it is not asserted on: the window and covered are.
	before := time.Now().UTC()
	e.stop(t)
	e.start(t)
	p.sentinel(t, "after-3")
	recs = waitAudit(t, p.audit, "a third watch.gap", func(r []record) bool { g, _ := gaps(t, r); return len(g) == 3 })
	g, rs = gaps(t, recs)
	if g[2].From.Before(before) || g[2].Covered || !strings.Contains(rs[2].Detail, "Docker's event stream broke") || !strings.Contains(rs[2].Detail, "no longer held") {
		t.Errorf("after a dockerd restart: want a window from after %v, not covered, saying the stream broke and Docker no longer held the last event:\n%s", before, rs[2].line)
	}
	t.Logf("the windows:\n%s", dumpRecords(rs))
	if n := len(filter(readAudit(t, p.audit), byEvent("watch.gap", "ok"))); n != 3 {
		t.Errorf("%d watch.gap records, want one per window, 3", n)
	}
}

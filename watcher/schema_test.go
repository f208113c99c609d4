package watcher

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/audit/schematest"
)

// Every kind the watcher writes validates against docs/audit.schema.json
// as the log wrote it.
func TestRecordsValidateAgainstTheSchema(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := sh.harness(t, "label:team=payments", false)
		ctx := context.Background()
		h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
		h.handle(ctx, hostEvent("connect", "c1", t0))
		h.handle(ctx, Event{Time: t0.Add(90 * time.Second), Type: "container", Action: "die", ContainerID: "c1", Name: "web", Image: "nginx:1"})
		h.fake.set(newContainer("bad", "intruder", "busybox", true, "hp"))
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "bad"})
		h.fake.set(newContainer("yshare", "yshare", "busybox", true, "container:xgone"))
		h.handle(ctx, startEvent("yshare", t0))
		// An endpoint whose Leave never came: its container stopped unseen.
		stale := newContainer("stale", "stale", "busybox", true, "hp")
		h.fake.set(stale)
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "stale"})
		h.w.reconcile(ctx)
		h.fake.set(stopped(stale, t0.Add(time.Minute)))
		h.w.reconcile(ctx)
		h.fake.publish(t0)
		h.w.gap = openGap{from: t0, why: "Docker's event stream broke (EOF)"}
		h.w.resumedFollowing(ctx, t0)
		h.w.lanes.wait()

		seen := schematest.Check(t, schematest.Lines(t, h.path))
		schematest.Covers(t, seen, audit.WatcherEvents)

		// With --policy-stop: a violator stopped, and one whose stop failed (a
		// refused record).
		h = sh.harness(t, "label:team=payments", true)
		h.fake.set(newContainer("bad1", "stopped", "busybox", true, "hp"))
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "bad1"})
		h.fake.stopErr = errors.New("cannot stop container: bad2: permission denied")
		h.fake.set(newContainer("bad2", "unstoppable", "busybox", true, "hp"))
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "bad2"})
		lines := schematest.Lines(t, h.path)
		schematest.Check(t, lines)

		// Every action, each on a line that validates.
		actions := map[string]audit.Record{}
		for _, line := range append(lines, seen[audit.PolicyViolation]) {
			var r audit.Record
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatal(err)
			}
			if r.Event == audit.PolicyViolation {
				actions[r.Action] = r
			}
		}
		for _, a := range audit.Actions {
			if _, ok := actions[a]; !ok {
				t.Errorf("no sample policy.violation with action %q", a)
			}
		}
		if r := actions[audit.ActionStopFailed]; r.Outcome != audit.Refused || r.Error != "cannot stop container: bad2: permission denied" {
			t.Errorf("the failed stop's record: outcome %q error %q, want refused with Docker's error", r.Outcome, r.Error)
		}
	})
}

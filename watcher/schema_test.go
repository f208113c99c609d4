package watcher

import (
	"context"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/audit/schematest"
)

// Every kind the watcher writes validates against docs/audit.schema.json
// as the log wrote it.
func TestRecordsValidateAgainstTheSchema(t *testing.T) {
	eachShape(t, func(t *testing.T, sh shape) {
		h := newHarness(t, "label:team=payments", false)
		h.shape = sh
		ctx := context.Background()
		h.fake.set(newContainer("c1", "web", "nginx:1", true, "host"))
		h.handle(ctx, hostEvent("connect", "c1", t0))
		h.handle(ctx, Event{Time: t0.Add(90 * time.Second), Type: "container", Action: "die", ContainerID: "c1", Name: "web", Image: "nginx:1"})
		h.fake.set(newContainer("bad", "intruder", "busybox", true, "hp"))
		h.handle(ctx, Event{Time: t0, Type: "network", Action: "connect", NetworkID: hpNet, ContainerID: "bad"})
		h.fake.set(newContainer("yshare", "yshare", "busybox", true, "container:xgone"))
		h.handle(ctx, startEvent("yshare", t0))

		seen := schematest.Check(t, schematest.Lines(t, h.path))
		schematest.Covers(t, seen, audit.WatcherEvents)
	})
}

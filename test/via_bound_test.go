//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestBoundsViaLongName: a container joining the namespace of a
// `--network host` container with a 90,000-character name
// (--network container:X) is recorded with via naming X, cut: its host.join
// was 90,729 bytes, over the 64 KiB bound.
func TestBoundsViaLongName(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.start(t)
	long := "x" + strings.Repeat("a", 90000)
	t.Cleanup(func() { e.dockerTry("rm", "-f", "via-long", long) })
	e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", long, "--network", "host", image, "sleep", "300")
	e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "via-long", "--network", "container:"+long, image, "sleep", "300")
	recs := waitAudit(t, p.audit, "host.join of via-long", func(r []record) bool { return len(filter(r, byContainer("via-long"))) == 1 })
	r := filter(recs, byContainer("via-long"))[0]
	if len(r.line) > 65536 || !slices.Contains(r.Truncated, "via.name") || !strings.Contains(r.line, `"via":{"id":"`) {
		t.Errorf("host.join of via-long: %d bytes (bound 65536), truncated %v; want via kept, its name cut", len(r.line), r.Truncated)
	}
	verifyLog(t, p.audit)
}

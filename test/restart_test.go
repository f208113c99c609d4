//go:build e2e

package e2e

import "testing"

// TestRestart proves that a network outlives restarts of the plugin and of
// dockerd, and that a plugin which lost its state still audits joins, saying
// it adopted the network.
func TestRestart(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.start(t)

	const tag = "e2e-restart"
	id := e.docker(t, "network", "create", "-d", p.name, "-o", "tag="+tag, "n-restart")
	runOnce := func(t *testing.T, adopted bool) {
		t.Helper()
		before := len(waitCount(t, p.audit, 1))
		e.docker(t, "run", "--rm", "--network", "n-restart", image, "true")
		recs := waitCount(t, p.audit, before+4)
		wantTag := tag
		if adopted {
			// Docker never sends a network's options again, so a plugin that
			// lost its state cannot know the tag.
			wantTag = ""
		}
		checkRun(t, recs[before:], id, wantTag, adopted)
		checkSeq(t, recs)
	}
	runOnce(t, false)

	t.Run("plugin-restart", func(t *testing.T) {
		p.stop(t) // asserts exit status 0 and the socket removed
		p.start(t)
		runOnce(t, false)
	})

	t.Run("dockerd-restart", func(t *testing.T) {
		// The legacy plugin keeps running: dockerd finds it when it comes back.
		e.stop(t)
		e.start(t)
		if got := e.networkID(t, "n-restart"); got != id {
			t.Fatalf("network ID after dockerd restart %q, want %q", got, id)
		}
		runOnce(t, false)
	})

	t.Run("empty-state-dir", func(t *testing.T) {
		p.stop(t)
		p.state = e.mkdir(t, "state-empty")
		p.start(t)
		runOnce(t, true)
	})
}

//go:build e2e

package e2e

import "testing"

// TestPolicy: a container the policy does not allow is recorded, and stopped
// only when the setting says so.
func TestPolicy(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	for _, stop := range []bool{false, true} {
		name := map[bool]string{false: "record", true: "stop"}[stop]
		t.Run(name, func(t *testing.T) {
			p := newLegacyPlugin(t, e)
			p.watch = true
			p.extra = []string{"--policy-allow", "label:team=payments"}
			if stop {
				p.extra = append(p.extra, "--policy-stop=true")
			}
			p.start(t)
			net := "n-pol-" + name
			e.docker(t, "network", "create", "-d", p.name, net)
			// Runs before the plugin stops (cleanups run last first): a
			// container left on the network would make dockerd wait for the
			// gone plugin when it stops.
			t.Cleanup(func() { e.dockerTry("rm", "-f", "ok-"+name, "bad-"+name) })
			e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "ok-"+name, "--label", "team=payments", "--network", net, image, "sleep", "300")
			e.docker(t, "run", "-d", "--stop-timeout", "1", "--name", "bad-"+name, "--network", net, image, "sleep", "300")
			recs := waitAudit(t, p.audit, "a policy.violation", func(r []record) bool { return len(filter(r, byEvent("policy.violation", "ok"))) > 0 })
			v := filter(recs, byEvent("policy.violation", "ok"))
			want := map[bool]string{false: "recorded", true: "stopped"}[stop]
			if len(v) != 1 || v[0].Container.Name != "bad-"+name || v[0].Action != want || v[0].Policy != "label:team=payments" {
				t.Fatalf("want one violation by bad-%s, action %s:\n%s", name, want, dumpRecords(v))
			}
			running := func(c string) string { return e.docker(t, "inspect", "-f", "{{.State.Running}}", c) }
			if got := running("bad-" + name); got != map[bool]string{false: "true", true: "false"}[stop] {
				t.Errorf("bad-%s running=%s after the violation (stop=%v)", name, got, stop)
			}
			if got := running("ok-" + name); got != "true" {
				t.Errorf("ok-%s, allowed, is not running", name)
			}
		})
	}
}

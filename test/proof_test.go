//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestProofOnRealDocker: the auditor's side on a log a real dockerd's
// plugin signed. A container on a hostpass network and one in host mode,
// then a clean stop. verify --pubkey FILE.pub passes; prove writes each
// container's bundle, and check-proof, with FILE.pub alone, prints the
// attachment and the stretch in host mode from T1 to T2 with their seqs; a
// bundle with one record's name changed is refused. The log cut after its
// checkpoints were collected is refused against them.
func TestProofOnRealDocker(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	bin := hostpassBin(t)
	key := filepath.Join(e.dir, "sign.key")
	pub := key + ".pub"
	run(t, bin, "audit", "keygen", "--sign", "--host", "e2e-host", key)

	p := newLegacyPlugin(t, e)
	p.watch = true
	p.extra = []string{"--sign-key", key}
	p.start(t)
	e.docker(t, "network", "create", "-d", p.name, "n-proof")
	e.docker(t, "run", "-d", "--name", "web", "--network", "n-proof", image, "sleep", "300")
	startHostMode(t, e, 1, func(int) string { return "hm" })
	waitAudit(t, p.audit, "web's endpoint.attribute and hm's host.join", func(r []record) bool {
		return len(filter(filter(r, byContainer("web")), byEvent("endpoint.attribute", "ok"))) == 1 &&
			len(filter(filter(r, byContainer("hm")), byEvent("host.join", "ok"))) == 1
	})
	e.docker(t, "rm", "-f", "web", "hm")
	waitAudit(t, p.audit, "web's endpoint.delete and hm's host.leave", func(r []record) bool {
		return len(filter(r, byEvent("endpoint.delete", "ok"))) == 1 && len(filter(filter(r, byContainer("hm")), byEvent("host.leave", "ok"))) == 1
	})
	p.stop(t)

	out := verifyLog(t, "--pubkey", pub, p.audit)
	if !strings.Contains(out, "signed: key certifications of epochs 1-") || !strings.Contains(out, "checkpoints verified against the tree") {
		t.Errorf("verify --pubkey:\n%s", out)
	}

	for _, tc := range []struct{ name, want string }{
		{"web", `^container web \([0-9a-f]{12}\) was attached to hostpass network [0-9a-f]{12} \(endpoint [0-9a-f]{12}\) on host \S+ from \S+ \(seq \d+ endpoint.join\) to \S+ \(seq \d+ endpoint.leave\)$`},
		{"hm", `^container hm \([0-9a-f]{12}\) was in host mode on host \S+ from \S+ \(seq \d+ host.join\) to \S+ \(seq \d+ host.leave\)$`},
	} {
		bundle := filepath.Join(e.dir, tc.name+".bundle")
		run(t, bin, "audit", "prove", "--container", tc.name, "-o", bundle, p.audit)
		out := run(t, bin, "audit", "check-proof", "--pubkey", pub, bundle)
		if !strings.HasPrefix(out, "ok: ") || !regexp.MustCompile(`(?m)`+tc.want).MatchString(out) {
			t.Errorf("check-proof of %s's bundle:\n%s\nwant a line matching %s", tc.name, out, tc.want)
		}
		// One record's container name changed in the bundle.
		b, err := os.ReadFile(bundle)
		if err != nil {
			t.Fatal(err)
		}
		name := []byte(`\"name\":\"` + tc.name + `\"`)
		if !bytes.Contains(b, name) {
			t.Fatalf("%s's bundle names no container %s", tc.name, tc.name)
		}
		os.WriteFile(bundle, bytes.Replace(b, name, []byte(`\"name\":\"xx\"`), 1), 0o644)
		out, code := runCode(bin, "audit", "check-proof", "--pubkey", pub, bundle)
		if code != 1 || !strings.HasPrefix(out, "FAIL: "+bundle+": bundle refused: record ") || !strings.Contains(out, "the line does not match its hash: the line was changed") {
			t.Errorf("check-proof of a changed bundle exits %d:\n%s", code, out)
		}
	}

	// Every checkpoint collected (the log's own lines, as a collector
	// holds them), then the log's tail cut: the last record before the stop checkpoint, and after.
	collected := filepath.Join(e.dir, "collected.jsonl")
	b, err := os.ReadFile(p.audit)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(collected, b, 0o644)
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	os.WriteFile(p.audit, []byte(strings.Join(lines[:len(lines)-4], "")), 0o640)
	out, code := runCode(bin, "audit", "verify", "--pubkey", pub, "--checkpoint", collected, p.audit)
	if code != 1 || !strings.HasPrefix(out, "FAIL: "+collected+" line ") || !strings.Contains(out, ": cut tail: collected checkpoint of ") {
		t.Errorf("verify --checkpoint of a cut log exits %d:\n%s", code, out)
	}
}

// runCode runs a command that may fail, and returns its output and exit
// code.
func runCode(name string, args ...string) (string, int) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		return err.Error(), -1
	}
	return string(out), 0
}

//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs scripts/demo.sh as the README says, where no Docker answers
// (DOCKER_HOST points at nothing), so that it starts a private dockerd in a
// network namespace of its own. Afterwards nothing of it is mounted, its
// namespace and socket are gone, and the logs it names are where it said.
func TestDemo(t *testing.T) {
	requirePrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "scripts", "demo.sh"))
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent/docker.sock")
	b, err := cmd.CombinedOutput()
	out := string(b)
	work := regexp.MustCompile(`/tmp/hostpass-demo\.[A-Za-z0-9]+`).FindString(out)
	if work != "" {
		t.Cleanup(func() {
			unmountUnder(t, work)
			os.RemoveAll(work)
		})
	}
	if err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, out)
	}
	ns := regexp.MustCompile(`private dockerd in network namespace (\S+)`).FindStringSubmatch(out)
	if work == "" || ns == nil {
		t.Fatalf("demo output names no work folder or no private dockerd (is a Docker answering here?):\n%s", out)
	}

	if m := mountsUnder(t, work); len(m) > 0 {
		t.Errorf("the demo left mounts under %s: %v", work, m)
	}
	if _, err := os.Lstat("/run/netns/" + ns[1]); !os.IsNotExist(err) {
		t.Errorf("the demo left network namespace %s (%v)", ns[1], err)
	}
	if _, err := os.Lstat(filepath.Join(pluginDir, ns[1]+".sock")); !os.IsNotExist(err) {
		t.Errorf("the demo left its socket %s.sock in %s (%v)", ns[1], pluginDir, err)
	}
	for _, said := range []string{"audit records (" + work + "/audit.jsonl)", "the daemon's log is " + work + "/hostpass.log",
		"logs kept in " + work + ": hostpass.log, dockerd.log, audit.jsonl"} {
		if !strings.Contains(out, said) {
			t.Errorf("demo output lacks %q:\n%s", said, out)
		}
	}
	// The log is signed: verify with the public key alone, and the
	// host-mode container's proof, checked offline.
	for _, said := range []string{"chain intact, signed: key certifications of epochs 1-1 from FILE.pub verified",
		"-hostmode (", ") was in host mode on host "} {
		if !strings.Contains(out, said) {
			t.Errorf("demo output lacks %q:\n%s", said, out)
		}
	}
	for _, f := range []string{"hostpass.log", "dockerd.log", "audit.jsonl", "sign.key.pub", "hostmode.proof"} {
		if st, err := os.Stat(filepath.Join(work, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s/%s: want the non-empty file the demo says it keeps; got %v", work, f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "data")); !os.IsNotExist(err) {
		t.Errorf("the demo left its dockerd's data root %s/data (%v)", work, err)
	}
}

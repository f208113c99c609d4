//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSandbox: each endpoint.join record says in "sandbox" what Join's
// SandboxKey named when hostpass looked. Docker 28 and later bind the
// container's network namespace at the key and then call Join: "live".
// Older engines call Join first and bind it as the container starts, so
// the path does not exist yet: "absent". A running container connected to
// another network has its namespace in place on every engine. A managed
// plugin runs in a mount namespace of its own, without Docker's exec root:
// it cannot tell, and says "unseen", never "absent".
func TestSandbox(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	version, is28 := e.version.String(), e.version.apiAtLeast(t, 48) // 28 (API 1.48) is the first engine to Join a live namespace
	atRun := "absent"
	if is28 {
		atRun = "live"
	}
	netnsDir := filepath.Join(e.dir, "x", "netns") // EXEC_ROOT/netns
	_, err := os.Stat(netnsDir)
	t.Logf("engine %s: join at docker run expected %q; before the first container, %s: %v", version, atRun, netnsDir, err)

	t.Run("legacy", func(t *testing.T) {
		p := newLegacyPlugin(t, e)
		p.start(t)
		run := e.docker(t, "network", "create", "-d", p.name, "--ipam-driver", "null", "n-sb-run")
		conn := e.docker(t, "network", "create", "-d", p.name, "--ipam-driver", "null", "n-sb-conn")

		// The engine's first container, at docker run.
		name := "c-sb-" + randHex(t, 4)
		e.docker(t, "run", "-d", "--name", name, "--network", "n-sb-run", image, "sleep", "600")
		t.Cleanup(func() { e.dockerTry("rm", "-f", name) })
		join := waitJoin(t, p.audit, run)
		t.Logf("engine %s: join at docker run: %s", version, join.line)
		if join.Sandbox != atRun {
			t.Errorf("engine %s: join at docker run has sandbox %q, want %q:\n%s", version, join.Sandbox, atRun, join.line)
		}
		if filepath.Dir(join.SandboxKey) != netnsDir {
			t.Errorf("sandbox_key %q is not in the engine's %s", join.SandboxKey, netnsDir)
		}
		// The key names this container's namespace once it runs.
		pid := e.docker(t, "inspect", "-f", "{{.State.Pid}}", name)
		if !sameFile(t, join.SandboxKey, "/proc/"+pid+"/ns/net") {
			t.Errorf("sandbox_key %s is not the namespace of container %s (pid %s)", join.SandboxKey, name, pid)
		}

		// docker network connect of the running container: its namespace
		// is in place on every engine.
		e.docker(t, "network", "connect", "n-sb-conn", name)
		join2 := waitJoin(t, p.audit, conn)
		t.Logf("engine %s: join at network connect: %s", version, join2.line)
		if join2.Sandbox != "live" || join2.SandboxKey != join.SandboxKey {
			t.Errorf("engine %s: join at network connect has sandbox %q, key %q; want \"live\", key %q:\n%s",
				version, join2.Sandbox, join2.SandboxKey, join.SandboxKey, join2.line)
		}

		// A later container at docker run: Docker's netns folder exists now
		// on every engine; the key in it still says what the engine does.
		e.docker(t, "run", "--rm", "--network", "n-sb-run", image, "true")
		joins := filter(filter(waitAudit(t, p.audit, "a second endpoint.join on n-sb-run", func(recs []record) bool {
			return len(filter(filter(recs, byEvent("endpoint.join", "ok")), func(r record) bool { return r.NetworkID == run })) >= 2
		}), byEvent("endpoint.join", "ok")), func(r record) bool { return r.NetworkID == run })
		if later := joins[1]; later.Sandbox != atRun || later.SandboxKey == join.SandboxKey {
			t.Errorf("engine %s: a later join at docker run has sandbox %q, key %q; want %q, a key of its own:\n%s",
				version, later.Sandbox, later.SandboxKey, atRun, later.line)
		}
		e.docker(t, "rm", "-f", name)
		e.docker(t, "network", "rm", "n-sb-run", "n-sb-conn")
		verifyLog(t, p.audit)
	})

	t.Run("managed", func(t *testing.T) {
		varLog := e.mkdir(t, "sb-varlog")
		auditLog := filepath.Join(varLog, "hostpass", "audit.jsonl")
		name := "hp-sb-" + randHex(t, 4) + ":latest"
		e.make(t, "plugin", "PLUGIN_NAME="+name, "BUILD="+filepath.Join(e.dir, "sb-build"),
			"PLUGIN_SETTINGS=varlog.source="+varLog+" docker.source="+e.sock+" HOSTPASS_WATCH=false")
		id := e.docker(t, "network", "create", "-d", name, "--ipam-driver", "null", "n-sb-managed")
		e.docker(t, "run", "--rm", "--network", "n-sb-managed", image, "true")
		join := waitJoin(t, auditLog, id)
		t.Logf("engine %s: managed plugin's join: %s", version, join.line)
		if join.Sandbox != "unseen" || filepath.Dir(join.SandboxKey) != netnsDir {
			t.Errorf("engine %s: the managed plugin's join has sandbox %q, key %q; want \"unseen\", a key in %s:\n%s",
				version, join.Sandbox, join.SandboxKey, netnsDir, join.line)
		}
		e.docker(t, "network", "rm", "n-sb-managed")
		e.docker(t, "plugin", "disable", name)
		e.docker(t, "plugin", "rm", name)
	})
}

// waitJoin waits for the endpoint.join record on network id, and returns it.
func waitJoin(t testing.TB, path, id string) record {
	t.Helper()
	on := func(r record) bool { return r.NetworkID == id }
	recs := waitAudit(t, path, "the endpoint.join on "+id, func(recs []record) bool {
		return len(filter(filter(recs, on), byEvent("endpoint.join", "ok"))) > 0
	})
	return filter(filter(recs, on), byEvent("endpoint.join", "ok"))[0]
}

// sameFile reports whether a and b are one file (device and inode).
func sameFile(t testing.TB, a, b string) bool {
	t.Helper()
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(a, &sa); err != nil {
		t.Fatalf("stat %s: %v", a, err)
	}
	if err := syscall.Stat(b, &sb); err != nil {
		t.Fatalf("stat %s: %v", b, err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

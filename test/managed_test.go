//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const registryReady = 20 * time.Second

// managedRun creates a network on the managed plugin driver, runs a
// container on it and checks the records in the host-side audit log; with
// watching, also the watcher's attribution of the container.
func managedRun(t *testing.T, e *engine, driver, auditLog, tag string, watching bool) {
	t.Helper()
	network := "n-" + tag
	id := e.docker(t, "network", "create", "-d", driver, "-o", "tag="+tag, network)
	recs := waitCount(t, auditLog, 1)
	before := len(recs)
	c := last(t, recs)
	if c.Event != "network.create" || c.Outcome != "ok" || c.NetworkID != id || c.Tag != tag {
		t.Fatalf("want network.create ok for %s tag %s in the host-side log, got:\n%s", id, tag, c.line)
	}
	t.Logf("driver field of a managed plugin's record: %q", c.Driver)
	if got, want := e.interfaces(t, network), []string{"eth0", "lo"}; !equal(got, want) {
		t.Errorf("container interfaces %v, want %v", got, want)
	}
	checkManagedRun(t, auditLog, before, id, tag, watching)
}

// checkManagedRun checks the records of one docker run from before on: the
// driver's four, and, with watching, the watcher's endpoint.attribute.
func checkManagedRun(t *testing.T, auditLog string, before int, id, tag string, watching bool) {
	t.Helper()
	driverRec := func(r record) bool { return r.Event != "endpoint.attribute" }
	recs := waitAudit(t, auditLog, "the run's records", func(recs []record) bool {
		if len(recs) < before {
			return false
		}
		attributed := len(filter(recs[before:], byEvent("endpoint.attribute", "ok"))) > 0
		return len(filter(recs[before:], driverRec)) >= 4 && (attributed || !watching)
	})
	mine := filter(recs[before:], driverRec)
	checkRun(t, mine, id, tag, false)
	checkSeq(t, recs)
	attr := filter(recs[before:], byEvent("endpoint.attribute", "ok"))
	switch {
	case !watching && len(attr) > 0:
		t.Errorf("the watcher is off, yet it attributed:\n%s", dumpRecords(attr))
	case watching && (len(attr) != 1 || attr[0].EndpointID != mine[0].EndpointID || attr[0].Container == nil || attr[0].Container.Image != image):
		t.Errorf("want one endpoint.attribute for endpoint %s, image %s; got:\n%s", mine[0].EndpointID, image, dumpRecords(attr))
	}
}

// pluginEnabled reports `docker plugin inspect`'s Enabled for name.
func pluginEnabled(t *testing.T, e *engine, name string) bool {
	t.Helper()
	return e.docker(t, "plugin", "inspect", "-f", "{{.Enabled}}", name) == "true"
}

// TestPluginInstall pushes the plugin with `make push` to a registry inside
// the test's namespace, installs it with `docker plugin install`, changes
// settings and uses it.
func TestPluginInstall(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	registry := startRegistry(t, e)
	name := "hp-e2e-" + randHex(t, 4) + ":latest"
	remote := registry + "/" + name

	e.make(t, "push", "REGISTRY="+registry, "PLUGIN_NAME="+name, "BUILD="+filepath.Join(e.dir, "build"))
	// make push removes its local copy, which would otherwise clash with the
	// install ("content ... already exists").
	if out, err := e.dockerTry("plugin", "inspect", remote); err == nil {
		t.Fatalf("make push left the local plugin %s behind:\n%s", remote, out)
	}

	e.docker(t, "plugin", "install", "--grant-all-permissions", "--disable", remote)
	// The varlog mount's source is the folder hostpass creates its own in:
	// here an empty folder of the test's.
	varLog := e.mkdir(t, "i-log")
	// Older layouts' mount names are refused (hostpass 3's audit and state,
	// the varlib of an earlier hostpass 4 build), so that an old setting
	// cannot silently move the trail or the state.
	for _, old := range []string{"audit", "state", "varlib"} {
		if out, err := e.dockerTry("plugin", "set", remote, old+".source="+varLog); err == nil || !strings.Contains(out, old) {
			t.Errorf("docker plugin set %s.source: want it refused, naming the setting; got %v: %s", old, err, out)
		} else {
			t.Logf("docker plugin set %s.source: %s", old, out)
		}
	}
	// Docker creates no mount source: with no socket where the docker mount
	// points (a host whose Docker listens elsewhere), enable fails and says
	// which mount.
	missing := filepath.Join(e.dir, "no-docker.sock")
	e.docker(t, "plugin", "set", remote, "varlog.source="+varLog, "docker.source="+missing)
	if out, err := e.dockerTry("plugin", "enable", remote); err == nil || !strings.Contains(out, missing) {
		t.Errorf("docker plugin enable with docker.source=%s: want it refused, naming the path; got %v: %s", missing, err, out)
	} else {
		t.Logf("docker plugin enable with no socket at docker.source: %s", out)
	}
	// Without the watcher the plugin needs no Docker socket: /dev/null as
	// the docker mount's source drops that grant.
	e.docker(t, "plugin", "set", remote, "HOSTPASS_LOG_LEVEL=debug", "HOSTPASS_WATCH=false",
		"varlog.source="+varLog, "docker.source=/dev/null")
	if env := e.docker(t, "plugin", "inspect", "-f", "{{.Settings.Env}}", remote); !strings.Contains(env, "HOSTPASS_LOG_LEVEL=debug") {
		t.Errorf("plugin settings env %s lacks HOSTPASS_LOG_LEVEL=debug", env)
	}
	e.docker(t, "plugin", "enable", remote)
	if !pluginEnabled(t, e, remote) {
		t.Fatalf("installed plugin %s not enabled", remote)
	}
	managedRun(t, e, remote, filepath.Join(varLog, "hostpass", "audit.jsonl"), "e2e-installed", false)
	state := filepath.Join(varLog, "hostpass", "state")
	if entries, err := os.ReadDir(state); err != nil || len(entries) == 0 {
		t.Errorf("state dir %s on the host is empty (%v): want the known networks there", state, err)
	}
	sock := fmt.Sprintf("/proc/%d/root/var/run/docker.sock", pluginPid(t, e, remote))
	if st, err := os.Stat(sock); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("the plugin's /var/run/docker.sock: want /dev/null, a character device; got %v, %v", st, err)
	}

	// The setting reached the plugin: its debug lines are in dockerd's log,
	// which carries the plugin's stdout tagged with its ID.
	id := e.docker(t, "plugin", "inspect", "-f", "{{.Id}}", remote)
	b, err := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	debug := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "plugin="+id) && strings.Contains(line, "level=debug") {
			debug = true
			break
		}
	}
	if !debug {
		t.Errorf("no debug line from plugin %s in dockerd's log after HOSTPASS_LOG_LEVEL=debug", id)
	}
}

// startRegistry runs Debian's docker-registry on loopback inside the
// engine's namespace and returns its address. Cleanup stops it by pid.
func startRegistry(t *testing.T, e *engine) string {
	t.Helper()
	return startRegistryOn(t, e, e.mkdir(t, "registry"))
}

// startRegistryOn is startRegistry serving the storage in folder root:
// two engines' registries on one root serve the same plugins, each on its
// own namespace's loopback, as one registry serves a fleet.
func startRegistryOn(t *testing.T, e *engine, root string) string {
	t.Helper()
	const addr = "127.0.0.1:5000" // the namespace's own loopback: no clash
	cfg := filepath.Join(e.dir, "registry.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		root, addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(e.dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := e.nsenter("docker-registry", "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("registry log (tail):\n%s", tail(logPath, 20))
		}
	})
	deadline := time.Now().Add(registryReady)
	for {
		select {
		case <-done:
			t.Fatalf("docker-registry exited; log:\n%s", tail(logPath, 20))
		default:
		}
		probe := exec.Command("nsenter", "--net=/run/netns/"+e.ns, busyboxPath, "wget", "-q", "-O", "/dev/null", "http://"+addr+"/v2/")
		if probe.Run() == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry not answering on %s after %s; log:\n%s", addr, registryReady, tail(logPath, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

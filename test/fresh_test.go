//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The machine's own hostpass folders. The fresh-host test never writes
// there; it checks that it did not.
var machineDirs = []string{"/var/log/hostpass", "/var/lib/hostpass"}

// freshHost is the file system of a host where Docker runs and hostpass
// never did: root/var/log and root/var/lib exist, as on every host, and
// nothing of hostpass. As on a systemd host, root is a shared mount; the
// engine's data root lives in root/var/lib/docker, where a real engine keeps
// it, so that the test can check the plugin cannot reach it.
type freshHost struct {
	root               string
	varLog, varLib     string // stand-ins for the host's /var/log and /var/lib
	auditLog, stateDir string // where hostpass must put its files, by itself
	legacyState        string // hostpass 3's state folder, root/var/lib/hostpass
}

// newFreshHost builds the stand-in under the engine's folder and moves the
// engine's data root into it (dockerd resolves the symlink left behind).
// The engine's cleanup unmounts root.
func newFreshHost(t *testing.T, e *engine) *freshHost {
	t.Helper()
	root := filepath.Join(e.dir, "h")
	h := &freshHost{root: root, varLog: filepath.Join(root, "var", "log"), varLib: filepath.Join(root, "var", "lib")}
	h.auditLog = filepath.Join(h.varLog, "hostpass", "audit.jsonl")
	h.stateDir = filepath.Join(h.varLog, "hostpass", "state")
	h.legacyState = filepath.Join(h.varLib, "hostpass")
	for _, d := range []string{h.varLog, h.varLib} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.stop(t)
	data := filepath.Join(e.dir, "data")
	if m := mountsUnder(t, data); len(m) > 0 {
		t.Fatalf("dockerd left mounts under its data root after stopping: %v", m)
	}
	if err := os.Rename(data, filepath.Join(h.varLib, "docker")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(h.varLib, "docker"), data); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(root, root, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", root, err)
	}
	if err := syscall.Mount("", root, "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		t.Fatalf("make %s shared: %v", root, err)
	}
	e.start(t)
	return h
}

// settings points the plugin's mounts at the stand-in host: the same
// folder as the shipped default (/var/log), under root, and the engine's
// socket.
func (h *freshHost) settings(e *engine) []string {
	return []string{"varlog.source=" + h.varLog, "docker.source=" + e.sock}
}

// checkFresh fails unless hostpass's own folders are absent: nothing made
// by hand.
func (h *freshHost) checkFresh(t *testing.T) {
	t.Helper()
	for _, d := range []string{filepath.Dir(h.auditLog), h.stateDir, h.legacyState} {
		if _, err := os.Lstat(d); !os.IsNotExist(err) {
			t.Fatalf("%s exists before the plugin ran (%v): the host is not fresh", d, err)
		}
	}
}

// checkShippedDefaults reads the repository's config.json: the stand-in
// host is only a stand-in if the default is the folder every host has, and
// the daemon's paths lie in it. One host folder is mounted, /var/log: no
// /var/lib, which holds Docker's data root, swarm keys, containerd's and the
// kubelet's data.
func checkShippedDefaults(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Env []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"env"`
		Mounts []struct {
			Name        string   `json:"name"`
			Source      string   `json:"source"`
			Destination string   `json:"destination"`
			Options     []string `json:"options"`
		} `json:"mounts"`
		Linux struct {
			Capabilities []string `json:"capabilities"`
		} `json:"linux"`
		PropagatedMount string `json:"propagatedmount"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	want := map[string]string{"varlog": "/var/log", "docker": "/var/run/docker.sock"}
	for _, m := range cfg.Mounts {
		if w, ok := want[m.Name]; !ok || m.Source != w || m.Destination != w {
			t.Errorf("config.json mount %s: %s -> %s; want one of %v, the host's path at the same path inside", m.Name, m.Source, m.Destination, want)
		}
		delete(want, m.Name)
		if m.Name != "docker" && !equal(m.Options, []string{"rbind", "rw", "rslave"}) {
			t.Errorf("config.json mount %s options %v, want rbind rw rslave (so that the plugin pins none of the host's mounts)", m.Name, m.Options)
		}
	}
	if len(want) > 0 {
		t.Errorf("config.json lacks mounts %v", want)
	}
	env := map[string]string{}
	for _, e := range cfg.Env {
		env[e.Name] = e.Value
	}
	if env["HOSTPASS_AUDIT_LOG"] != "/var/log/hostpass/audit.jsonl" || env["HOSTPASS_STATE_DIR"] != "/var/log/hostpass/state" {
		t.Errorf("config.json HOSTPASS_AUDIT_LOG=%q HOSTPASS_STATE_DIR=%q, want /var/log/hostpass/audit.jsonl and /var/log/hostpass/state",
			env["HOSTPASS_AUDIT_LOG"], env["HOSTPASS_STATE_DIR"])
	}
	if len(cfg.Linux.Capabilities) > 0 || cfg.PropagatedMount != "" {
		t.Errorf("config.json asks for capabilities %v, propagatedmount %q; want none", cfg.Linux.Capabilities, cfg.PropagatedMount)
	}
}

// absent returns those of paths that do not exist now.
func absent(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			out = append(out, p)
		}
	}
	return out
}

// TestManagedFreshHost is the managed plugin's whole life on a host where
// hostpass never ran, with nothing created by hand: `make plugin`, use,
// disable and enable, `docker plugin rm` and `docker plugin install` from a
// registry, `docker plugin upgrade` to a newer tag. The network made at the
// start keeps working throughout, and the host-side audit log is one chain:
// seq continues and `hostpass audit verify` passes.
func TestManagedFreshHost(t *testing.T) {
	checkShippedDefaults(t)
	checkMachineDirsUntouched(t)
	e := newEngine(t)
	h := newFreshHost(t, e)
	e.loadBusybox(t)
	h.checkFresh(t)

	// A file system mounted in the host's /var/log before the plugin
	// starts; the host unmounts it later and the plugin must let go of it
	// too, or it pins the file system (its disk cannot be detached).
	disk := filepath.Join(h.varLog, "disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", disk, err)
	}

	// 1. make plugin, as the README's tour says.
	alias := "hp-fresh-" + randHex(t, 4)
	name := alias + ":latest"
	e.make(t, "plugin", "PLUGIN_NAME="+name, "BUILD="+filepath.Join(e.dir, "build"),
		"PLUGIN_SETTINGS="+strings.Join(h.settings(e), " "))
	if !pluginEnabled(t, e, name) {
		t.Fatalf("plugin %s not enabled after make plugin", name)
	}
	if caps := e.docker(t, "plugin", "inspect", "-f", "{{.Config.Linux.Capabilities}}", name); caps != "[]" {
		t.Errorf("plugin asks for capabilities %s, want none", caps)
	}
	managedRun(t, e, name, h.auditLog, "fresh", true)
	// hostpass made its folders at its first record, on the host, all
	// under /var/log.
	for _, d := range []string{filepath.Dir(h.auditLog), h.stateDir} {
		if st, err := os.Stat(d); err != nil || !st.IsDir() || st.Mode().Perm() != 0o750 {
			t.Errorf("%s: want the folder hostpass creates, mode 0750; got %v", d, err)
		}
	}
	network := "n-fresh"
	netID := e.networkID(t, network)
	if entries, err := os.ReadDir(h.stateDir); err != nil || len(entries) == 0 {
		t.Errorf("host-side state dir %s is empty (%v): the plugin's state would not survive", h.stateDir, err)
	}

	inPlugin := strings.TrimPrefix(disk, h.root)
	pid := pluginPid(t, e, name)
	checkUnreachable(t, pid, h.varLib, filepath.Join(h.varLib, "docker"))
	if !hasMount(t, pid, inPlugin) {
		t.Fatalf("the plugin's /var/log lacks the host's mount %s: the check below would prove nothing", inPlugin)
	}
	if err := syscall.Unmount(disk, 0); err != nil {
		t.Fatalf("unmount %s: %v", disk, err)
	}
	// rslave lets the host's unmount reach the plugin, as long as the
	// runtime keeps the plugin's copy of the host's /var/log a slave. runc
	// 1.1.15 and 1.2.0 on (runc#4417; current releases, and
	// the one `make e2e-29` uses) make the mount that holds the plugin's
	// rootfs private in the plugin's namespace before binding its mounts:
	// when that is also the mount holding /var/log (one file system for
	// /var/lib/docker and /var/log, as on most hosts and on this stand-in),
	// the plugin's /var/log is private and keeps what was mounted below it
	// when it started. No plugin setting changes that: Docker sets no rootfs
	// propagation for a plugin without a propagatedmount, and with one it
	// asks for rshared, which runc also makes private. What each runtime
	// does is asserted, so that a runc that fixes it shows here.
	pins := e.version.runcAtLeast(t, 1, 1, 15)
	switch held := hasMount(t, pid, inPlugin); {
	case held && !pins:
		t.Errorf("the plugin still holds %s after the host unmounted it: it pins the host's file systems (want rslave)", inPlugin)
	case !held && pins:
		t.Errorf("runc %s: the host's unmount of %s reached the plugin; runc 1.1.15 and later were seen to keep it (runc#4417): update this test and README", e.version.Runc, inPlugin)
	case held:
		t.Logf("runc %s: the plugin keeps %s after the host unmounted it (its /var/log is private, runc#4417)", e.version.Runc, inPlugin)
	}

	// runAgain runs a container on the first network and checks that its
	// records continue the same log.
	runAgain := func(step string) {
		t.Helper()
		before, failed := len(readAudit(t, h.auditLog)), t.Failed()
		e.docker(t, "run", "--rm", "--network", network, image, "true")
		checkManagedRun(t, h.auditLog, before, netID, "fresh", true)
		if !failed && t.Failed() {
			t.Fatalf("after %s: the log does not continue", step)
		}
	}

	// 2. disable and enable.
	e.docker(t, "plugin", "disable", "-f", name)
	e.docker(t, "plugin", "enable", name)
	runAgain("disable and enable")

	// 3. rm, then install from a registry under the same name (--alias):
	// the network made with the first plugin works again.
	registry := startRegistry(t, e)
	remote := func(tag string) string { return registry + "/" + alias + ":" + tag }
	for _, tag := range []string{"v1", "v2"} {
		// VERSION makes each build's rootfs differ from the others: one
		// engine refuses two plugins of the same content.
		e.make(t, "push", "REGISTRY="+registry, "PLUGIN_NAME="+alias+":"+tag, "VERSION=fresh-"+tag,
			"BUILD="+filepath.Join(e.dir, "build"))
	}
	e.docker(t, "plugin", "rm", "-f", name)
	e.docker(t, append([]string{"plugin", "install", "--grant-all-permissions", "--alias", alias, remote("v1")}, h.settings(e)...)...)
	checkPluginVersion(t, e, name, "fresh-v1")
	runAgain("rm and install")

	// 4. upgrade to v2. Docker keeps env settings but resets mount sources
	// to the new config's defaults: set them again before enabling.
	e.docker(t, "plugin", "disable", "-f", name)
	// Without --skip-remote-check the CLI asks "Plugin images do not match,
	// are you sure?" for another tag and, with no terminal to answer,
	// upgrades nothing and still exits 0 (docker 28 CLI).
	e.docker(t, "plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", name, remote("v2"))
	src := e.docker(t, "plugin", "inspect", "-f", `{{range .Config.Mounts}}{{if eq .Name "varlog"}}{{.Source}}{{end}}{{end}}`, name)
	t.Logf("varlog.source after docker plugin upgrade: %s (set before: %s)", src, h.varLog)
	e.docker(t, append([]string{"plugin", "set", name}, h.settings(e)...)...)
	e.docker(t, "plugin", "enable", name)
	checkPluginVersion(t, e, name, "fresh-v2")
	runAgain("upgrade")

	// A new network and container on the upgraded plugin, then the whole
	// chain as an auditor checks it.
	managedRun(t, e, name, h.auditLog, "fresh-v2", true)
	recs := readAudit(t, h.auditLog)
	checkSeq(t, recs)
	if adopted := filter(recs, func(r record) bool { return r.Adopted }); len(adopted) > 0 {
		t.Errorf("records with adopted=true: the plugin lost its known networks on the way:\n%s", dumpRecords(adopted))
	}
	checkUnreachable(t, pluginPid(t, e, name), h.varLib, filepath.Join(h.varLib, "docker"))
	if _, err := os.Lstat(h.legacyState); !os.IsNotExist(err) {
		t.Errorf("%s exists (%v): the plugin wrote outside /var/log", h.legacyState, err)
	}
	// The folder, as docs/audit.md runs it: state/ beside the log is no
	// second log.
	out, err := exec.Command(hostpassBin(t), "audit", "verify", filepath.Dir(h.auditLog)).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok") {
		t.Errorf("hostpass audit verify %s: %v\n%s", filepath.Dir(h.auditLog), err, out)
	}
	t.Logf("%d records in one chain across make plugin, disable/enable, rm+install, upgrade; verify: %s", len(recs), strings.TrimSpace(string(out)))
}

// checkPluginVersion asserts that the plugin's running process is the
// build stamped with version (the Makefile's VERSION, linked into the
// binary): Docker really started the new rootfs.
func checkPluginVersion(t *testing.T, e *engine, name, version string) {
	t.Helper()
	if !pluginEnabled(t, e, name) {
		t.Fatalf("plugin %s not enabled", name)
	}
	exe, err := os.ReadFile(fmt.Sprintf("/proc/%d/exe", pluginPid(t, e, name)))
	if err != nil {
		t.Fatalf("the plugin's binary: %v", err)
	}
	if !bytes.Contains(exe, []byte(version)) {
		t.Errorf("plugin %s runs another build than %s", name, version)
	}
}

// pluginPid is the pid of the plugin's process, from the pid file
// containerd's shim keeps in the task's bundle under dockerd's exec root.
func pluginPid(t *testing.T, e *engine, name string) int {
	t.Helper()
	id := e.docker(t, "plugin", "inspect", "-f", "{{.Id}}", name)
	f := filepath.Join(e.dir, "x", "containerd", "daemon", "io.containerd.runtime.v2.task", "plugins.moby", id, "init.pid")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatalf("pid of plugin %s: %v", name, err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatalf("pid file %s: %v", f, err)
	}
	return pid
}

// hasMount reports whether process pid sees a mount at path.
func hasMount(t *testing.T, pid int, path string) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatalf("mounts of the plugin (pid %d): %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountinfo(f[4]) == path {
			return true
		}
	}
	return false
}

// mountEntry is one line of /proc/PID/mountinfo: the file system
// (major:minor), the folder of it that is mounted, and where.
type mountEntry struct{ dev, root, point string }

func mountTable(t *testing.T, pid string) []mountEntry {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatalf("mount table of %s: %v", pid, err)
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			out = append(out, mountEntry{f[2], unescapeMountinfo(f[3]), unescapeMountinfo(f[4])})
		}
	}
	return out
}

// within reports whether path p is dir or lies below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// checkUnreachable fails if the plugin (pid) has a mount at or under
// /var/lib, or any mount through which it reaches one of the host's folders
// hostDirs: one whose mounted folder holds it or lies inside it. The
// plugin's own root, which Docker keeps under its data root, is the
// exception.
func checkUnreachable(t *testing.T, pid int, hostDirs ...string) {
	t.Helper()
	host := mountTable(t, "self")
	plugin := mountTable(t, fmt.Sprint(pid))
	var points []string
	for _, m := range plugin {
		points = append(points, m.point)
		if within(m.point, "/var/lib") {
			t.Errorf("the plugin has a mount at %s (%s of device %s): want nothing at /var/lib", m.point, m.root, m.dev)
		}
	}
	for _, dir := range hostDirs {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			t.Fatal(err)
		}
		// The host's mount holding dir, and dir's path in its file system.
		var at mountEntry
		for _, m := range host {
			if within(real, m.point) && len(m.point) >= len(at.point) {
				at = m
			}
		}
		rel := filepath.Join(at.root, strings.TrimPrefix(real, at.point))
		for _, m := range plugin {
			if m.point != "/" && m.dev == at.dev && (within(rel, m.root) || within(m.root, rel)) {
				t.Errorf("the plugin reaches the host's %s through its mount at %s (%s of device %s)", dir, m.point, m.root, m.dev)
			}
		}
	}
	t.Logf("the plugin's mount points: %s", strings.Join(points, " "))
}

// earlierLayoutConfig writes, beside the engine, this repository's
// config.json as hostpass 3 and the first hostpass 4 builds laid the state
// out: a mount "varlib" of the host's /var/lib, and HOSTPASS_STATE_DIR
// /var/lib/hostpass in it.
func earlierLayoutConfig(t *testing.T, e *engine) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	for _, v := range cfg["env"].([]any) {
		if env := v.(map[string]any); env["name"] == "HOSTPASS_STATE_DIR" {
			env["value"] = "/var/lib/hostpass"
		}
	}
	cfg["mounts"] = append(cfg["mounts"].([]any), map[string]any{
		"name": "varlib", "source": "/var/lib", "destination": "/var/lib", "type": "bind",
		"options": []string{"rbind", "rw", "rslave"}, "settable": []string{"source"},
	})
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.dir, "config-earlier.json")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestManagedUpgradeLayout upgrades a plugin of the earlier layout, with its
// state in the host's /var/lib/hostpass, to this one with `docker plugin
// upgrade`, following README's migration steps: set HOSTPASS_STATE_DIR again
// (Docker keeps the old value) and copy the old state into
// /var/log/hostpass/state before enabling. The network made before the
// upgrade stays known (no adoption), the log is one chain, and the upgraded
// plugin reaches no /var/lib.
func TestManagedUpgradeLayout(t *testing.T) {
	checkMachineDirsUntouched(t)
	e := newEngine(t)
	h := newFreshHost(t, e)
	e.loadBusybox(t)
	h.checkFresh(t)
	registry := startRegistry(t, e)
	alias := "hp-layout-" + randHex(t, 4)
	name := alias + ":latest"
	remote := func(tag string) string { return registry + "/" + alias + ":" + tag }
	build := filepath.Join(e.dir, "build")
	e.make(t, "push", "REGISTRY="+registry, "PLUGIN_NAME="+alias+":earlier", "VERSION=layout-earlier",
		"CONFIG="+earlierLayoutConfig(t, e), "BUILD="+build)
	e.make(t, "push", "REGISTRY="+registry, "PLUGIN_NAME="+alias+":now", "VERSION=layout-now", "BUILD="+build)

	e.docker(t, "plugin", "install", "--grant-all-permissions", "--alias", alias, remote("earlier"),
		"varlog.source="+h.varLog, "varlib.source="+h.varLib, "docker.source="+e.sock)
	checkPluginVersion(t, e, name, "layout-earlier")
	managedRun(t, e, name, h.auditLog, "earlier", true)
	netID := e.networkID(t, "n-earlier")
	if entries, err := os.ReadDir(h.legacyState); err != nil || len(entries) == 0 {
		t.Fatalf("the earlier layout's state %s is empty (%v): the upgrade below would prove nothing", h.legacyState, err)
	}

	e.docker(t, "plugin", "disable", "-f", name)
	e.docker(t, "plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", name, remote("now"))
	// Docker keeps the settings' environment across an upgrade: the old
	// state dir, which the new config no longer mounts.
	env := e.docker(t, "plugin", "inspect", "-f", "{{.Settings.Env}}", name)
	if !strings.Contains(env, "HOSTPASS_STATE_DIR=/var/lib/hostpass") {
		t.Errorf("after docker plugin upgrade the env is %s; README says Docker keeps HOSTPASS_STATE_DIR=/var/lib/hostpass", env)
	}
	// README's steps.
	e.docker(t, append([]string{"plugin", "set", name, "HOSTPASS_STATE_DIR=/var/log/hostpass/state"}, h.settings(e)...)...)
	if out, err := exec.Command("install", "-d", "-m", "0750", h.stateDir).CombinedOutput(); err != nil {
		t.Fatalf("install -d %s: %v\n%s", h.stateDir, err, out)
	}
	if out, err := exec.Command("cp", "-a", h.legacyState+"/.", h.stateDir+"/").CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s: %v\n%s", h.legacyState, err, out)
	}
	e.docker(t, "plugin", "enable", name)
	checkPluginVersion(t, e, name, "layout-now")
	checkUnreachable(t, pluginPid(t, e, name), h.varLib, filepath.Join(h.varLib, "docker"))

	before := len(readAudit(t, h.auditLog))
	e.docker(t, "run", "--rm", "--network", "n-earlier", image, "true")
	checkManagedRun(t, h.auditLog, before, netID, "earlier", true)
	recs := readAudit(t, h.auditLog)
	if adopted := filter(recs, func(r record) bool { return r.Adopted }); len(adopted) > 0 {
		t.Errorf("records with adopted=true: the copied state was not used:\n%s", dumpRecords(adopted))
	}
	out, err := exec.Command(hostpassBin(t), "audit", "verify", h.auditLog).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok") {
		t.Errorf("hostpass audit verify %s: %v\n%s", h.auditLog, err, out)
	}
}

// checkMachineDirsUntouched fails the test, at its end, if it created one of
// the machine's own machineDirs: a mount source was not the stand-in's.
func checkMachineDirsUntouched(t *testing.T) {
	t.Helper()
	untouched := absent(machineDirs)
	t.Cleanup(func() {
		for _, p := range untouched {
			if _, err := os.Lstat(p); !os.IsNotExist(err) {
				t.Errorf("the test wrote to the machine's %s (%v): a mount source was not the stand-in's", p, err)
			}
		}
	})
}

//go:build e2e

package e2e

import (
	"strings"
	"syscall"
	"testing"
)

// TestAuditUnwritable makes the audit log's filesystem read-only for real (a
// tmpfs remounted ro): no container may join unaudited, a running container
// can still be removed (teardown is never refused, its records wait in
// memory), and once the log is writable again everything is on record with
// seq unbroken.
func TestAuditUnwritable(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	fs := e.mkdir(t, "auditfs")
	if err := syscall.Mount("tmpfs", fs, "tmpfs", 0, "size=4m,mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", fs, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(fs, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", fs, err)
		}
	})
	p.audit = fs + "/audit.jsonl"
	p.start(t)

	const tag = "e2e-ro"
	id := e.docker(t, "network", "create", "-d", p.name, "-o", "tag="+tag, "n-ro")
	e.docker(t, "run", "--rm", "--network", "n-ro", image, "true")
	e.docker(t, "run", "-d", "--name", "victim", "--network", "n-ro", image, "sleep", "600")
	good := waitCount(t, p.audit, 7)
	checkRun(t, good[1:5], id, tag, false)
	victim := good[5].EndpointID

	// The kernel refuses a read-only remount while hostpass holds the log
	// open for writing (EBUSY), so restart hostpass over the read-only log.
	remount := func(flags uintptr) {
		t.Helper()
		if err := syscall.Mount("tmpfs", fs, "tmpfs", syscall.MS_REMOUNT|flags, "size=4m,mode=0755"); err != nil {
			t.Fatalf("remount %s (flags %#x): %v", fs, flags, err)
		}
	}
	p.stop(t)
	remount(syscall.MS_RDONLY)
	p.start(t)

	// Teardown is never refused.
	e.docker(t, "rm", "-f", "victim")

	out, err := e.dockerTry("run", "--rm", "--network", "n-ro", image, "true")
	if err == nil {
		t.Fatalf("docker run succeeded with the audit log read-only: %s", out)
	}
	want := "NetworkDriver.CreateEndpoint: audit log unavailable: open " + p.audit +
		": read-only file system; refusing endpoint.create so that nothing joins unaudited"
	if !strings.Contains(out, want) {
		t.Errorf("docker run output:\n%s\nwant it to contain:\n%s", out, want)
	}

	remount(0)
	// Records kept in memory are written by hostpass's retry, within a
	// second or so, without any new call.
	recs := waitAudit(t, p.audit, "the kept teardown and refusal records", func(recs []record) bool { return len(recs) >= len(good)+3 })
	kept := recs[len(good):]
	if len(kept) != 3 {
		t.Fatalf("want exactly 3 kept records (leave, delete, refused create), got:\n%s", dumpRecords(kept))
	}
	for i, wantEvent := range []string{"endpoint.leave", "endpoint.delete"} {
		if r := kept[i]; r.Event != wantEvent || r.Outcome != "ok" || r.EndpointID != victim {
			t.Errorf("kept record %d: want %s ok for the removed container's endpoint %s:\n%s", i+1, wantEvent, victim, r.line)
		}
	}
	r := kept[2]
	if r.Event != "endpoint.create" || r.Outcome != "refused" || r.NetworkID != id || r.EndpointID == "" || !strings.HasPrefix(r.Error, "audit log unavailable: open ") {
		t.Errorf("want the refused endpoint.create with its error:\n%s", r.line)
	}

	e.docker(t, "run", "--rm", "--network", "n-ro", image, "true")
	recs = waitCount(t, p.audit, len(good)+3+4)
	checkSeq(t, recs)
	checkRun(t, recs[len(good)+3:], id, tag, false)
	if got := filter(recs, func(x record) bool { return x.EndpointID == r.EndpointID }); len(got) != 1 {
		t.Errorf("the refused endpoint has other records (it must never have joined):\n%s", dumpRecords(got))
	}
}

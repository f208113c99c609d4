//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
)

// maxRecord is the bound docs/audit.md states for every line of the log.
const maxRecord = 64 << 10

// TestBounds feeds a real dockerd what once bricked the log: a 600 kB tag
// and 1 MB container labels. The tag is refused with the limit, and the
// refusal is on record, bounded; the labels are on record, cut, with the
// marker; after a restart of the plugin, joins work and the log verifies.
func TestBounds(t *testing.T) {
	e := newEngine(t)
	e.loadBusybox(t)
	p := newLegacyPlugin(t, e)
	p.watch = true
	p.start(t)

	t.Run("long-tag", func(t *testing.T) {
		// One argument to exec is at most 128 KiB, so the docker CLI
		// cannot carry 600 kB: the API takes it, as `docker network create
		// -o tag=...` sends it.
		tag := strings.Repeat("t", 600_000)
		want := `network option "tag" is 600000 bytes; the limit is 256 bytes`
		body, _ := json.Marshal(map[string]any{"Name": "n-longtag", "Driver": p.name, "Options": map[string]string{"tag": tag}})
		code, reply := e.api(t, "/networks/create", body)
		if code < 400 || !strings.Contains(reply, "NetworkDriver.CreateNetwork: "+want) {
			t.Fatalf("network create with a 600 kB tag: HTTP %d %s\nwant a refusal with %q", code, reply, want)
		}
		// And through the CLI, with as long a tag as exec allows.
		out, err := e.dockerTry("network", "create", "-d", p.name, "-o", "tag="+strings.Repeat("t", 100_000), "n-longtag")
		if err == nil || !strings.Contains(out, `network option "tag" is 100000 bytes; the limit is 256 bytes`) {
			t.Fatalf("docker network create with a 100 kB tag: %v\n%.300s\nwant the limit named", err, out)
		}
		refusals := filter(readAudit(t, p.audit), byEvent("network.create", "refused"))
		if len(refusals) != 2 || refusals[0].Error != want || !slices.Contains(refusals[0].Truncated, "options") {
			t.Fatalf("want 2 network.create refusals, the first with the error and cut options:\n%.2000s", dumpRecords(refusals))
		}
		if r := refusals[0]; r.Tag != "" || len(r.line) > maxRecord {
			t.Errorf("refusal record: tag %.20q, %d bytes; want no tag, at most %d bytes", r.Tag, len(r.line), maxRecord)
		}
	})

	id := e.docker(t, "network", "create", "-d", p.name, "--ipam-driver", "null", "-o", "tag=bounds", "n-bounds")
	for _, tc := range []struct{ name, network, event string }{
		{"label-hostpass-network", "n-bounds", "endpoint.attribute"},
		{"label-host-network", "host", "host.join"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The CLI takes a label of at most 128 KiB (--label: one exec
			// argument) or 64 KiB (--label-file: one line): 1 MB goes
			// through the API, as `docker run --label` sends it.
			body, _ := json.Marshal(map[string]any{
				"Image": image, "Cmd": []string{"sleep", "2"},
				"Labels":     map[string]string{"big": strings.Repeat("L", 1<<20), "team": "ops"},
				"HostConfig": map[string]any{"NetworkMode": tc.network, "AutoRemove": true},
			})
			if code, reply := e.api(t, "/containers/create?name="+tc.name, body); code != http.StatusCreated {
				t.Fatalf("create %s: HTTP %d %s", tc.name, code, reply)
			}
			if code, reply := e.api(t, "/containers/"+tc.name+"/start", nil); code != http.StatusNoContent {
				t.Fatalf("start %s: HTTP %d %s", tc.name, code, reply)
			}
			recs := waitAudit(t, p.audit, tc.event+" of "+tc.name, func(r []record) bool {
				return len(filter(filter(r, byEvent(tc.event, "ok")), byContainer(tc.name))) == 1
			})
			r := filter(filter(recs, byEvent(tc.event, "ok")), byContainer(tc.name))[0]
			big := r.Container.Labels["big"]
			if !slices.Contains(r.Truncated, "container.labels") || !strings.HasSuffix(big, "…") || len(big) > 4096 || r.Container.Labels["team"] != "ops" {
				t.Errorf("%s: truncated %v, label big of %d bytes, team %q; want container.labels cut with the marker, team kept",
					tc.event, r.Truncated, len(big), r.Container.Labels["team"])
			}
		})
	}

	t.Run("restart", func(t *testing.T) {
		p.stop(t)
		p.start(t)
		before := len(readAudit(t, p.audit))
		e.docker(t, "run", "--rm", "--network", "n-bounds", image, "true")
		recs := waitAudit(t, p.audit, "the join after the restart", func(r []record) bool {
			return len(filter(r[before:], byEvent("endpoint.join", "ok"))) == 1
		})
		if j := filter(recs[before:], byEvent("endpoint.join", "ok"))[0]; j.NetworkID != id || !hasInterface(j.HostInterfaces, "lo") {
			t.Errorf("join after the restart: want the network and the host view it names:\n%s", j.line)
		}
		checkSeq(t, recs)
		verifyLog(t, p.audit)
	})

	f, err := os.Open(p.audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break
		}
		if len(line)-1 > maxRecord {
			t.Errorf("line %d of the log is %d bytes, over the bound of %d", n, len(line)-1, maxRecord)
		}
	}
}

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

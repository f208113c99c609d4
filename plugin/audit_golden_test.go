package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// The sealed logs cannot be made in the test with stable output: the log
// writes its audit.epoch records itself, with the time they are made. They
// are made once by a real audit.Log, under the test key
// testdata/audit/initial.key (a key for these tests only), and kept:
//
//	go test ./plugin/ -run TestGoldenAudit -fixtures -update
//
// rewrites them (keeping the key) and then the goldens; review the diff.
var fixtures = flag.Bool("fixtures", false, "rewrite the sealed audit logs in testdata/audit/ (then run with -update too)")

const fixtureDir = "testdata/audit"

// IDs as Docker makes them: 64 hex digits, shown cut to 12.
var (
	netID  = strings.Repeat("3f1c9a0b", 8)
	epID   = strings.Repeat("8d2e4b6c", 8)
	epID2  = strings.Repeat("a71f03d5", 8)
	webID  = strings.Repeat("c0ffee12", 8)
	dbID   = strings.Repeat("d00dfeed", 8)
	rogue  = strings.Repeat("bad5eed0", 8)
	start  = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	links1 = []audit.Interface{
		{Name: "lo", Index: 1, MTU: 65536, Up: true, Addrs: []string{"127.0.0.1/8"}},
		{Name: "eth0", Index: 2, MAC: "52:54:00:12:34:56", MTU: 1500, Up: true, Addrs: []string{"192.0.2.10/24"}},
	}
)

// records is a short life of a hostpass network, with a host-mode container
// beside it; rotate is called after the third and the sixth record, so the
// log has two rotated files and the current one.
func records() []audit.Record {
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	r := func(s int, event audit.Event) audit.Record {
		return audit.Record{Time: at(s), Event: event, Outcome: audit.OK, Host: "node1", Driver: "hostpass", NetworkID: netID}
	}
	create := r(0, audit.NetworkCreate)
	create.Internal, create.Tag, create.IPAMPools = audit.Flag(false), "prod", []string{"198.18.0.0/24"}
	epCreate := r(1, audit.EndpointCreate)
	epCreate.EndpointID = epID
	join := r(2, audit.EndpointJoin)
	join.EndpointID, join.SandboxKey, join.View = epID, "/var/run/docker/netns/1a2b3c4d5e6f", links1
	attr := r(3, audit.EndpointAttribute)
	attr.EndpointID, attr.Container = epID, &audit.Container{ID: webID, Name: "web", Image: "busybox"}
	host := audit.Record{Time: at(4), Event: audit.HostJoin, Outcome: audit.OK, Host: "node1",
		Container: &audit.Container{ID: dbID, Image: "busybox"}, ObservedLate: true}
	refused := r(5, audit.EndpointJoin)
	refused.Outcome, refused.EndpointID, refused.View = audit.Refused, epID2, links1
	refused.Error = "endpoint " + epID2[:12] + " is not known to this network: create it first"
	violation := r(6, audit.PolicyViolation)
	violation.Container, violation.Policy, violation.Action = &audit.Container{ID: rogue, Name: "rogue"}, "no-privileged", "recorded"
	leave := r(7, audit.EndpointLeave)
	leave.EndpointID = epID
	del := r(8, audit.EndpointDelete)
	del.EndpointID = epID
	return []audit.Record{create, epCreate, join, attr, host, refused, violation, leave, del}
}

// writeLog writes recs to the log at path under o, rotating after every
// rotateEvery records (0: never), and closes it.
func writeLog(t *testing.T, path string, o audit.Options, recs []audit.Record, rotateEvery int) {
	t.Helper()
	l, err := audit.OpenWith(path, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		if err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
		if rotateEvery > 0 && (i+1)%rotateEvery == 0 && i+1 < len(recs) {
			if err := l.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// plainLog writes the plain (unsealed) log in a folder of its own: every
// time in it is fixed, so the output is the same on every run.
func plainLog(t *testing.T) (dir string) {
	dir = t.TempDir()
	writeLog(t, filepath.Join(dir, "audit.jsonl"), audit.Options{}, records(), 3)
	return dir
}

// fixture copies testdata/audit/NAME to a folder of its own as audit.jsonl.
func fixture(t *testing.T, name string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatalf("%v (go test ./plugin/ -run TestGoldenAudit -fixtures -update writes it)", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "audit.jsonl"), b, 0o640); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeFixtures makes the sealed logs of testdata/audit/ with a real
// audit.Log under the test key.
func writeFixtures(t *testing.T) {
	initial := filepath.Join(fixtureDir, "initial.key")
	if _, err := os.Stat(initial); err != nil {
		if err := audit.NewKeyFile(initial); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	daemonKey := func(epoch uint64) string {
		path := filepath.Join(tmp, "daemon.key")
		os.Remove(path)
		if err := audit.StepKeyFile(initial, path, epoch); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keep := func(name string) {
		b, err := os.ReadFile(filepath.Join(tmp, "audit.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fixtureDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(tmp, "audit.jsonl"))
	}
	log := filepath.Join(tmp, "audit.jsonl")
	// sealed.jsonl: the key evolves every 4 records, and once more at Close.
	writeLog(t, log, audit.Options{SealKey: daemonKey(0), EpochRecords: 4, EpochInterval: time.Hour}, records(), 0)
	keep("sealed.jsonl")
	// late-start.jsonl: a new log begun with a key in epoch 1, as whoever
	// copied the daemon's key file could begin one.
	writeLog(t, log, audit.Options{SealKey: daemonKey(1), EpochInterval: time.Hour}, records()[:3], 0)
	keep("late-start.jsonl")
	// epoch-skip.jsonl: a daemon killed in epoch 0 (never closed, so no
	// audit.epoch record), and the log continued under the key of epoch 2.
	killed, err := audit.OpenWith(log, audit.Options{SealKey: daemonKey(0), EpochInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range records()[:2] {
		if err := killed.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	writeLog(t, log, audit.Options{SealKey: daemonKey(2), EpochInterval: time.Hour}, records()[2:3], 0)
	keep("epoch-skip.jsonl")
}

// TestGoldenAudit compares what `audit show` and `audit verify` print, and
// verify's exit code, with testdata/audit-*.golden: over a plain log made
// here, the sealed logs of testdata/audit/, and copies of them damaged in
// one precise way each, one for every kind of problem verify reports.
func TestGoldenAudit(t *testing.T) {
	if *fixtures {
		writeFixtures(t)
	}
	t.Setenv("HOSTPASS_AUDIT_LOG", "")
	key := func(t *testing.T) string {
		abs, err := filepath.Abs(filepath.Join(fixtureDir, "initial.key"))
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	const current = "audit.jsonl"
	rotated1, rotated2 := "audit.jsonl.00000000000000000001", "audit.jsonl.00000000000000000005"
	for _, tc := range []struct {
		name string
		log  func(t *testing.T) string // the log's folder
		// damage, if set, changes the log before the command runs.
		damage func(t *testing.T, dir string)
		args   func(t *testing.T, dir string) []string
		code   int
	}{
		{name: "audit-show", log: plainLog, code: 0,
			args: func(t *testing.T, dir string) []string { return []string{"audit", "show", dir} }},
		{name: "audit-show-json", log: plainLog, code: 0,
			args: func(t *testing.T, dir string) []string { return []string{"audit", "show", "--json", dir} }},

		// The plain log: three files, twelve records (three host.view).
		{name: "audit-verify-ok", log: plainLog, code: 0, args: verifyDir},
		{name: "audit-verify-ok-start", log: plainLog, code: 0,
			damage: func(t *testing.T, dir string) { remove(t, dir, rotated1) },
			args: func(t *testing.T, dir string) []string {
				return []string{"audit", "verify", "--start", "5:" + hashOf(t, dir, rotated2, 0), dir}
			}},
		{name: "audit-verify-modified", log: plainLog, code: 1, args: verifyDir,
			damage: func(t *testing.T, dir string) {
				edit(t, dir, rotated2, func(ls []string) []string {
					i := lineWith(t, ls, `"outcome":"refused"`)
					ls[i] = strings.Replace(ls[i], `"outcome":"refused"`, `"outcome":"ok"`, 1)
					return ls
				})
			}},
		{name: "audit-verify-reads-two-ways", log: plainLog, code: 1, args: verifyDir,
			// A second seq member, which encoding/json reads (any case,
			// the last one) and verify's fast reader does not.
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string {
					ls[1] = replaceOnce(t, ls[1], `"schema":2,`, `"schema":2,"Seq":99,`)
					return ls
				})
			}},
		{name: "audit-verify-missing", log: plainLog, code: 1, args: verifyDir,
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string { return append(ls[:1], ls[2:]...) })
			}},
		{name: "audit-verify-missing-file", log: plainLog, code: 1, args: verifyDir,
			damage: func(t *testing.T, dir string) { remove(t, dir, rotated2) }},
		{name: "audit-verify-missing-start", log: plainLog, code: 1, args: verifyDir,
			damage: func(t *testing.T, dir string) { remove(t, dir, rotated1) }},
		{name: "audit-verify-reordered", log: plainLog, code: 1, args: verifyDir,
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string { ls[1], ls[2] = ls[2], ls[1]; return ls })
			}},
		{name: "audit-verify-inserted", log: plainLog, code: 1, args: verifyDir,
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string { return append(ls[:2], ls[1:]...) })
			}},
		{name: "audit-verify-torn-line", log: plainLog, code: 1, args: verifyDir,
			damage: func(t *testing.T, dir string) {
				b := read(t, dir, current)
				os.WriteFile(filepath.Join(dir, current), b[:len(b)-40], 0o640) // cut inside the last line
			}},
		{name: "audit-verify-cut-off-end", log: plainLog, code: 1,
			args: func(t *testing.T, dir string) []string {
				return []string{"audit", "verify", "--anchor", "14:" + strings.Repeat("ab", 32), dir}
			}},
		{name: "audit-verify-anchor-differs", log: plainLog, code: 1,
			args: func(t *testing.T, dir string) []string {
				return []string{"audit", "verify", "--anchor", "2:" + strings.Repeat("ab", 32), dir}
			}},
		{name: "audit-verify-chain-broken", log: plainLog, code: 1, args: verifyDir,
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string {
					ls[1] = replaceOnce(t, ls[1], `"prev":"`+hashOf(t, dir, current, 0), `"prev":"`+strings.Repeat("ab", 32))
					return ls
				})
			}},
		{name: "audit-verify-not-json", log: plainLog, code: 1, args: verifyDir,
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string { ls[1] = "endpoint.leave ok " + epID; return ls })
			}},
		{name: "audit-verify-unknown-view", log: plainLog, code: 1, args: verifyDir,
			// A plain chain can be rewritten by anyone: the join names
			// a view no record shows, and every hash after it is redone.
			damage: func(t *testing.T, dir string) {
				edit(t, dir, rotated1, func(ls []string) []string {
					i := lineWith(t, ls, `"event":"endpoint.join"`)
					ls[i] = replaceOnce(t, ls[i], `"host_view":"`+viewOf(t, ls[i]), `"host_view":"`+strings.Repeat("0f", 32))
					return rechain(t, ls, i)
				})
				first := hashOf(t, dir, rotated1, -1)
				edit(t, dir, rotated2, func(ls []string) []string {
					ls[0] = replaceOnce(t, ls[0], `"prev":"`+prevOf(t, ls[0]), `"prev":"`+first)
					return rechain(t, ls, 0)
				})
				last := hashOf(t, dir, rotated2, -1)
				edit(t, dir, current, func(ls []string) []string {
					ls[0] = replaceOnce(t, ls[0], `"prev":"`+prevOf(t, ls[0]), `"prev":"`+last)
					return rechain(t, ls, 0)
				})
			}},
		{name: "audit-verify-unsealed", log: plainLog, code: 1,
			args: func(t *testing.T, dir string) []string { return []string{"audit", "verify", "--key", key(t), dir} }},
		{name: "audit-verify-no-log", log: plainLog, code: 1,
			args: func(t *testing.T, dir string) []string {
				return []string{"audit", "verify", filepath.Join(dir, "gone", "audit.jsonl")}
			}},

		// The sealed logs of testdata/audit/.
		{name: "audit-verify-sealed-ok", log: sealed("sealed.jsonl"), code: 0,
			args: func(t *testing.T, dir string) []string { return []string{"audit", "verify", "--key", key(t), dir} }},
		{name: "audit-verify-sealed-unverified", log: sealed("sealed.jsonl"), code: 3, args: verifyDir},
		{name: "audit-verify-sealed-chain-only", log: sealed("sealed.jsonl"), code: 0,
			args: func(t *testing.T, dir string) []string { return []string{"audit", "verify", "--chain-only", dir} }},
		{name: "audit-verify-sealed-modified", log: sealed("sealed.jsonl"), code: 1,
			damage: func(t *testing.T, dir string) {
				edit(t, dir, current, func(ls []string) []string {
					i := lineWith(t, ls, `"name":"rogue"`)
					ls[i] = strings.Replace(ls[i], `"name":"rogue"`, `"name":"backup"`, 1)
					return ls
				})
			},
			args: func(t *testing.T, dir string) []string { return []string{"audit", "verify", "--key", key(t), dir} }},
		{name: "audit-verify-bad-key", log: sealed("sealed.jsonl"), code: 1,
			args: func(t *testing.T, dir string) []string {
				other := filepath.Join(t.TempDir(), "other.key")
				if err := audit.NewKeyFile(other); err != nil {
					t.Fatal(err)
				}
				return []string{"audit", "verify", "--key", other, dir}
			}},
		{name: "audit-verify-late-start", log: sealed("late-start.jsonl"), code: 1,
			args: func(t *testing.T, dir string) []string { return []string{"audit", "verify", "--key", key(t), dir} }},
		{name: "audit-verify-epoch-skip", log: sealed("epoch-skip.jsonl"), code: 1,
			args: func(t *testing.T, dir string) []string { return []string{"audit", "verify", "--key", key(t), dir} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.log(t)
			if tc.damage != nil {
				tc.damage(t, dir)
			}
			args := tc.args(t, dir)
			var out bytes.Buffer
			code := run(args, &out, &out)
			// The folder is new on every run; the test key is ours.
			got := strings.ReplaceAll(out.String(), dir, "$DIR")
			got = strings.ReplaceAll(got, key(t), "testdata/audit/initial.key")
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, dir, "$DIR")
			}
			if code != tc.code {
				t.Errorf("hostpass %q exits %d, want %d\n%s", args, code, tc.code, got)
			}
			checkGolden(t, tc.name, args, []byte(got))
		})
	}
}

func verifyDir(t *testing.T, dir string) []string { return []string{"audit", "verify", dir} }

func sealed(name string) func(t *testing.T) string {
	return func(t *testing.T) string { return fixture(t, name) }
}

func read(t *testing.T, dir, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func remove(t *testing.T, dir, file string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, file)); err != nil {
		t.Fatal(err)
	}
}

// edit rewrites the lines of dir/file with change.
func edit(t *testing.T, dir, file string, change func([]string) []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(read(t, dir, file)), "\n"), "\n")
	lines = change(lines)
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
}

func replaceOnce(t *testing.T, line, old, new string) string {
	t.Helper()
	if !strings.Contains(line, old) {
		t.Fatalf("no %s in %s", old, line)
	}
	return strings.Replace(line, old, new, 1)
}

// lineWith is the index of the first line holding s.
func lineWith(t *testing.T, lines []string, s string) int {
	t.Helper()
	for i, l := range lines {
		if strings.Contains(l, s) {
			return i
		}
	}
	t.Fatalf("no line holds %s", s)
	return -1
}

// member returns the string value of "name" in line, as the log writes it.
func member(t *testing.T, line, name string) string {
	t.Helper()
	_, v, ok := strings.Cut(line, `"`+name+`":"`)
	v, _, ok2 := strings.Cut(v, `"`)
	if !ok || !ok2 {
		t.Fatalf("no %s in %s", name, line)
	}
	return v
}

func prevOf(t *testing.T, line string) string { return member(t, line, "prev") }
func viewOf(t *testing.T, line string) string { return member(t, line, "host_view") }

// hashOf is the hash of line i of dir/file (-1: the last line).
func hashOf(t *testing.T, dir, file string, i int) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(read(t, dir, file)), "\n"), "\n")
	if i < 0 {
		i = len(lines) + i
	}
	return member(t, lines[i], "hash")
}

// rechain redoes the plain SHA-256 hashes of lines from, and the prev of
// each line after it, as whoever rewrites a plain log can: the hash is the
// SHA-256 of the line up to `,"hash":"`, closed with "}".
func rechain(t *testing.T, lines []string, from int) []string {
	t.Helper()
	const hashMember = `,"hash":"`
	for i := from; i < len(lines); i++ {
		if i > from {
			lines[i] = replaceOnce(t, lines[i], `"prev":"`+prevOf(t, lines[i]), `"prev":"`+member(t, lines[i-1], "hash"))
		}
		body := lines[i][:strings.LastIndex(lines[i], hashMember)]
		sum := sha256.Sum256([]byte(body + "}"))
		lines[i] = body + hashMember + hex.EncodeToString(sum[:]) + `"}`
	}
	return lines
}

package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A collector's line gives its record only when it is hostpass's message
// with hostpass's STRUCTURED-DATA; anything else, however close, is not a
// record.
func TestCollectedRecord(t *testing.T) {
	const rec = `{"time":"2026-11-27T10:00:00Z","seq":1,"event":"host.join","host":"node-1","prev":"00","hash":"ab"}`
	const sd = `[hostpass@32473 seq="1" prev="00" hash="ab"]`
	for _, tc := range []struct {
		name, line, want, host string
	}{
		{"the sink's message", `<86>1 2026-11-27T10:00:00.000000Z node-1 hostpass 4242 host.join ` + sd + ` ` + rec, rec, "node-1"},
		{"with an epoch", `<86>1 2026-11-27T10:00:00.000000Z node-1 hostpass 4242 host.join [hostpass@32473 seq="1" epoch="0" prev="00" hash="ab"] ` + rec, rec, "node-1"},
		{"an escaped ] in a value", `<86>1 T node-1 hostpass 1 - [hostpass@32473 seq="1" prev="0\]0" hash="ab"] ` + rec, rec, "node-1"},
		{"its body cut: the rest as it is", `<86>1 T node-1 hostpass 1 host.join ` + sd + ` ` + rec[:40], rec[:40], "node-1"},
		{"another program", `<38>1 2026-11-27T10:00:00Z node-1 sshd 311 - - Accepted publickey for root`, "", ""},
		{"another program with hostpass's element", `<38>1 T node-1 sshd 311 - ` + sd + ` ` + rec, "", ""},
		{"no structured data", `<86>1 T node-1 hostpass 4242 host.join - ` + rec, "", ""},
		{"another element", `<86>1 T node-1 hostpass 4242 host.join [meta sequenceId="1"] ` + rec, "", ""},
		{"the header cut", `<86>1 2026-11-27T10:00:00Z node-1 hostpass`, "", ""},
		{"the element cut", `<86>1 T node-1 hostpass 1 - [hostpass@32473 seq="1" prev="00`, "", ""},
		{"the element unended", `<86>1 T node-1 hostpass 1 - [hostpass@32473 seq="1"]` + rec, "", ""},
		{"a log's line", rec, "", ""},
		{"empty", "", "", ""},
	} {
		got, host, ok := CollectedRecord([]byte(tc.line))
		if string(got) != tc.want || host != tc.host || ok != (tc.want != "") {
			t.Errorf("%s: %q, %q, %v; want %q, %q", tc.name, got, host, ok, tc.want, tc.host)
		}
	}
}

// show reads a collector's file as a log: each hostpass line's record,
// passed on as the record's own line (what --json prints), and nothing of
// the lines that are not hostpass's or whose record the collector cut.
func TestQueryReadsCollectorFile(t *testing.T) {
	const rec = `{"time":"2026-11-27T10:00:00Z","seq":1,"event":"host.join","outcome":"ok","host":"node-1","prev":"00","hash":"ab"}`
	lines := []string{
		`<38>1 2026-11-27T10:00:00Z node-1 sshd 311 - - {"time":"2026-11-27T10:00:00Z","seq":9,"event":"host.join","host":"evil"}`,
		`<86>1 T node-1 hostpass 1 host.join [hostpass@32473 seq="1" prev="00" hash="ab"] ` + rec,
		`<86>1 T node-2 hostpass 1 host.join [hostpass@32473 seq="1" prev="00" hash="cd"] ` + strings.Replace(rec, "node-1", "node-2", 1)[:50],
		`<86>1 T node-2 hostpass 1 host.join [hostpass@32473 seq="1" prev="00" hash="cd"] ` + strings.Replace(rec, "node-1", "node-2", 1),
	}
	path := writeLines(t, lines)
	var got []string
	if err := Query([]string{path}, Filter{}, func(e *Entry, line []byte) error {
		got = append(got, e.Host+" "+string(line))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"node-1 " + rec, "node-2 " + strings.Replace(rec, "node-1", "node-2", 1)}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "received.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

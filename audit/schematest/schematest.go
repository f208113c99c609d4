// Package schematest checks audit log lines against docs/audit.schema.json,
// the record schema published for SIEM pipelines. Each package that writes
// records (audit, driver, watcher) has a test that writes one record of
// every kind it writes, through its real code, and hands the lines here.
package schematest

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hostpass/hostpass/audit"
)

// Path is docs/audit.schema.json, found from this file's place in the
// module, so that a test of any package reads the same file.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "audit.schema.json")
}

// Compile reads and compiles the published schema, with formats
// (date-time) asserted, as a validating pipeline would.
func Compile(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", Path(), err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(Path(), doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(Path())
	if err != nil {
		t.Fatalf("%s: %v", Path(), err)
	}
	return s
}

// Lines returns the lines of the log file at path.
func Lines(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Check validates every line against the schema, failing t for each line
// that does not pass, and returns the kinds seen with a line of each.
func Check(t testing.TB, lines [][]byte) map[audit.Event][]byte {
	t.Helper()
	s := Compile(t)
	seen := map[audit.Event][]byte{}
	for _, line := range lines {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
		if err != nil {
			t.Errorf("not JSON: %v: %s", err, line)
			continue
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("a line the log wrote does not validate against %s: %v\nline: %s", filepath.Base(Path()), err, line)
		}
		if m, ok := v.(map[string]any); ok {
			if e, ok := m["event"].(string); ok {
				seen[audit.Event(e)] = line
			}
		}
	}
	return seen
}

// Covers fails t for each of kinds that seen has no line of.
func Covers(t testing.TB, seen map[audit.Event][]byte, kinds []audit.Event) {
	t.Helper()
	var missing []string
	for _, k := range kinds {
		if seen[k] == nil {
			missing = append(missing, string(k))
		}
	}
	if len(missing) > 0 {
		t.Errorf("no sample record of %s: write one through the code that writes it and check it here", strings.Join(missing, ", "))
	}
}

package audit_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/audit/schematest"
)

// writeEveryLogKind writes, through a real Log, a record of each kind the
// log writes itself (audit.LogEvents), sealed when sealKey is set, signed
// when signKey is (audit.checkpoint), a daemon's start and stop
// (audit.restart, audit.stop): an outage
// that loses records (audit.lost), joins whose views are written in full and
// as a change (host.view), a record cut to the bound, epochs that end
// (audit.epoch, sealed only) and a crash mid-write (audit.torn_tail). It
// returns the log's path.
func writeEveryLogKind(t *testing.T, sealKey, signKey string) string {
	t.Helper()
	dir := t.TempDir()
	blocker := filepath.Join(dir, "logs")
	os.WriteFile(blocker, nil, 0o640) // a file where the log's directory should be: unwritable
	path := filepath.Join(blocker, "audit.jsonl")
	o := audit.Options{SealKey: sealKey, SignKey: signKey, EpochRecords: 3, EpochInterval: time.Hour, MaxKept: 1, Host: "node1", Driver: "hp"}
	l, err := audit.OpenWith(path, o)
	if err != nil {
		t.Fatal(err)
	}
	l.Start() // unwritable: its records are written once the log is
	net := strings.Repeat("ab", 32)
	for _, ep := range []string{"e1", "e2", "e3"} {
		l.AppendOrKeep(audit.Record{Time: time.Now().UTC(), Event: audit.EndpointLeave, Outcome: audit.OK, Driver: "hp", Host: "node1", NetworkID: net, EndpointID: ep})
	}
	os.Remove(blocker)
	lo := audit.Interface{Name: "lo", Index: 1, MTU: 65536, Up: true, Addrs: []string{"127.0.0.1/8"}}
	eth := audit.Interface{Name: "eth0", Index: 2, MAC: "02:42:ac:11:00:02", MTU: 1500, Up: true, Addrs: []string{"10.0.0.2/24"}}
	veth := audit.Interface{Name: "veth1", Index: 3, MTU: 1500}
	for _, view := range [][]audit.Interface{{lo, eth}, {lo, veth}} {
		join := audit.Record{Time: time.Now().UTC(), Event: audit.EndpointJoin, Outcome: audit.OK, Driver: "hp", Host: "node1",
			NetworkID: net, EndpointID: "e4", SandboxKey: "/var/run/docker/netns/0123456789ab", Internal: audit.Flag(false), Adopted: audit.Flag(false), View: view}
		if err := l.Append(join); err != nil {
			t.Fatal(err)
		}
	}
	huge := audit.Record{Time: time.Now().UTC(), Event: audit.NetworkCreate, Outcome: audit.Refused, Error: "refused", Driver: "hp", Host: "node1",
		NetworkID: net, Options: map[string]any{"com.docker.network.generic": map[string]any{"tag": strings.Repeat("t", 100<<10)}}}
	if err := l.AppendOrKeep(huge); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-`) // killed mid-write
	f.Close()
	if l, err = audit.OpenWith(path, o); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(audit.Record{Time: time.Now().UTC(), Event: audit.NetworkDelete, Outcome: audit.OK, Driver: "hp", Host: "node1", NetworkID: net}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every kind the log writes itself, plain and sealed, validates against
// docs/audit.schema.json as the log wrote it, and the log verifies.
func TestLogRecordsValidateAgainstTheSchema(t *testing.T) {
	dir := t.TempDir()
	signKey := filepath.Join(dir, "sign.key")
	if _, err := audit.NewSignKeyFile(signKey, "node1"); err != nil {
		t.Fatal(err)
	}
	initial := filepath.Join(dir, "initial.key")
	if err := audit.NewKeyFile(initial); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(initial)
	daemonKey := filepath.Join(dir, "seal.key")
	os.WriteFile(daemonKey, b, 0o600)
	_, key, err := audit.ReadKeyFile(initial)
	if err != nil {
		t.Fatal(err)
	}
	without := func(drop ...audit.Event) []audit.Event {
		return slices.DeleteFunc(slices.Clone(audit.LogEvents), func(e audit.Event) bool { return slices.Contains(drop, e) })
	}
	for _, tc := range []struct {
		name, sealKey, signKey string
		kinds                  []audit.Event
		verify                 audit.VerifyOptions
	}{
		{"plain", "", "", without(audit.EpochEnd, audit.Checkpoint), audit.VerifyOptions{}},
		{"sealed", daemonKey, "", without(audit.Checkpoint), audit.VerifyOptions{Key: key}},
		{"signed", "", signKey, audit.LogEvents, audit.VerifyOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeEveryLogKind(t, tc.sealKey, tc.signKey)
			lines := schematest.Lines(t, path)
			seen := schematest.Check(t, lines)
			schematest.Covers(t, seen, tc.kinds)
			// The shapes a kind comes in: a view in full and as a change, a
			// record cut to the bound.
			all := string(bytes.Join(lines, []byte("\n")))
			for _, member := range []string{`"host_interfaces":`, `"base_view":`, `"changed_interfaces":`, `"removed_interfaces":`, `"truncated":`, `"lost":`} {
				if !strings.Contains(all, member) {
					t.Errorf("no sample record has %s", member)
				}
			}
			if _, err := audit.Verify([]string{path}, tc.verify); err != nil {
				t.Errorf("the sample log does not verify: %v", err)
			}
		})
	}
}

// A refused record cut to its identity fields (the last stage of the
// bound) has no error; it validates because its truncated names error. The
// same line without that mark does not: the schema asks a refused record
// for its error.
func TestABareRefusedRecordValidates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.OpenWith(path, audit.Options{Host: "node1", Driver: "hp"})
	if err != nil {
		t.Fatal(err)
	}
	// No stage before the last cuts removed_interfaces: 20,000 indexes
	// leave only the identity fields.
	removed := make([]int, 20000)
	for i := range removed {
		removed[i] = 100000 + i
	}
	rec := audit.Record{Time: time.Now().UTC(), Event: audit.NetworkCreate, Outcome: audit.Refused, Error: "refused: why", Driver: "hp", Host: "node1",
		NetworkID: strings.Repeat("ab", 32), RemovedInterfaces: removed}
	if err := l.Append(rec); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := schematest.Lines(t, path)
	schematest.Check(t, lines)
	var bare map[string]any
	if err := json.Unmarshal(lines[len(lines)-1], &bare); err != nil {
		t.Fatal(err)
	}
	truncated, _ := bare["truncated"].([]any)
	if _, has := bare["error"]; has || bare["outcome"] != "refused" || !slices.Contains(truncated, any("error")) {
		t.Fatalf("want a refused record cut to its identity fields, without error, truncated naming it: %s", lines[len(lines)-1])
	}

	noMark := maps.Clone(bare)
	delete(noMark, "truncated")
	otherMarks := maps.Clone(bare)
	otherMarks["truncated"] = slices.DeleteFunc(slices.Clone(truncated), func(v any) bool { return v == "error" })
	s := schematest.Compile(t)
	for _, unmarked := range []map[string]any{noMark, otherMarks} {
		b, _ := json.Marshal(unmarked)
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(v); err == nil {
			t.Errorf("docs/audit.schema.json accepts a refused record without error whose truncated does not name error: %s", b)
		}
	}
}

// A schema-1 line (hostpass 1 to 3: no "schema" member) does not validate:
// the file describes schema 2 only, as its description and docs/audit.md
// say, and a pipeline routes schema-1 lines by the absent member.
func TestASchema1LineDoesNotValidate(t *testing.T) {
	zeros := strings.Repeat("0", 64)
	line := `{"time":"2025-01-02T03:04:05.000000006Z","seq":1,"event":"network.create","outcome":"ok","driver":"hp","host":"node1",` +
		`"network_id":"` + strings.Repeat("ab", 32) + `","internal":false,"adopted":false,"prev":"` + zeros + `","hash":"` + zeros + `"}`
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Compile(t).Validate(v); err == nil || !strings.Contains(err.Error(), "missing property 'schema'") {
		t.Errorf("a schema-1 line: validation error %v, want one naming the missing \"schema\"", err)
	}
}

// The record's shape is declared in code (audit.Record and the types it
// holds), in docs/audit.schema.json and in docs/audit.md's field table:
// they must name the same fields, of the same JSON types, and the same
// event kinds and outcomes.
func TestSchemaDocAndCodeAgree(t *testing.T) {
	code := jsonShape(reflect.TypeFor[audit.Record](), "")
	schema := readSchema(t)
	defs := schema["$defs"].(map[string]any)
	fromSchema := map[string]field{}
	schemaShape(defs, schema, "", fromSchema)
	compare(t, "audit.Record", code, "docs/audit.schema.json", fromSchema, true)

	doc := docTable(t)
	top := map[string]field{}
	for name, f := range code {
		if !strings.Contains(name, ".") {
			top[name] = f
		}
	}
	compare(t, "audit.Record", top, "docs/audit.md's field table", doc, true)
	schemaTop := map[string]field{}
	for name, f := range fromSchema {
		if !strings.Contains(name, ".") {
			schemaTop[name] = f
		}
	}
	compare(t, "docs/audit.schema.json", schemaTop, "docs/audit.md's field table", doc, true)
	// The table names the members of a nested object in its row (or in
	// the row it refers to: "as in `host_interfaces`").
	for name := range code {
		parent, member, nested := strings.Cut(name, ".")
		if !nested || strings.Contains(member, ".") || doc[parent].typ == "" {
			continue
		}
		row := docRow(t, parent)
		if m := regexp.MustCompile("as in `([^`]+)`").FindStringSubmatch(row); m != nil {
			row = docRow(t, m[1])
		}
		if !strings.Contains(row, "`"+member+"`") {
			t.Errorf("docs/audit.md's row of %q does not name its member %q", parent, member)
		}
	}

	// Events and outcomes.
	var enum []audit.Event
	for _, e := range defs["event"].(map[string]any)["enum"].([]any) {
		enum = append(enum, audit.Event(e.(string)))
	}
	if !slices.Equal(enum, audit.Events) {
		t.Errorf("docs/audit.schema.json's event kinds %v, audit.Events %v", enum, audit.Events)
	}
	var outcomes []audit.Outcome
	for _, o := range schema["properties"].(map[string]any)["outcome"].(map[string]any)["enum"].([]any) {
		outcomes = append(outcomes, audit.Outcome(o.(string)))
	}
	if !slices.Equal(outcomes, audit.Outcomes) {
		t.Errorf("docs/audit.schema.json's outcomes %v, audit.Outcomes %v", outcomes, audit.Outcomes)
	}
	var actions []string
	for _, a := range schema["properties"].(map[string]any)["action"].(map[string]any)["enum"].([]any) {
		actions = append(actions, a.(string))
	}
	if !slices.Equal(actions, audit.Actions) {
		t.Errorf("docs/audit.schema.json's \"action\" values %q, audit.Actions %q", actions, audit.Actions)
	}
	var docActions []string
	for _, k := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(docRow(t, "action"), -1) {
		docActions = append(docActions, k[1])
	}
	if !slices.Equal(docActions, audit.Actions) {
		t.Errorf("docs/audit.md's \"action\" values %q, audit.Actions %q", docActions, audit.Actions)
	}
	md := docRow(t, "event")
	for _, g := range []struct {
		from  string
		kinds []audit.Event
	}{{"from the driver", audit.DriverEvents}, {"from the watcher", audit.WatcherEvents}, {"from the log itself", audit.LogEvents}} {
		m := regexp.MustCompile(g.from + `: ([^;|]*)`).FindStringSubmatch(md)
		if m == nil {
			t.Errorf("docs/audit.md's event row has no %q list: %s", g.from, md)
			continue
		}
		var listed []audit.Event
		for _, k := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(m[1], -1) {
			listed = append(listed, audit.Event(k[1]))
		}
		if !slices.Equal(listed, g.kinds) {
			t.Errorf("docs/audit.md lists %s: %v; the code: %v", g.from, listed, g.kinds)
		}
	}
	var docOutcomes []audit.Outcome
	for _, k := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(docRow(t, "outcome"), -1) {
		docOutcomes = append(docOutcomes, audit.Outcome(k[1]))
	}
	if !slices.Equal(docOutcomes, audit.Outcomes) {
		t.Errorf("docs/audit.md's outcomes %v, audit.Outcomes %v", docOutcomes, audit.Outcomes)
	}
}

// field is one member of a record, at a path like "container.labels".
type field struct {
	// typ is the JSON Schema type: string, integer, number, boolean,
	// object, with what an array holds ("array of integer") and what the
	// values of a map are ("object of string"; "object" for any values).
	typ      string
	required bool // always present
}

var timeType = reflect.TypeFor[time.Time]()

// jsonShape lists the JSON members of t, a struct, as encoding/json writes
// them, recursively for the structs it holds (directly, by pointer, or as
// elements of a slice). A member without omitempty is always written:
// required. Hash is the exception: the log always writes it, last.
func jsonShape(t reflect.Type, prefix string) map[string]field {
	out := map[string]field{}
	for sf := range t.Fields() {
		tag := sf.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		path := prefix + name
		ft := sf.Type
		required := !strings.Contains(opts, "omitempty") || path == "hash"
		if ft.Kind() == reflect.Pointer {
			ft, required = ft.Elem(), false
		}
		out[path] = field{typ: jsonType(ft), required: required}
		elem := ft
		if ft.Kind() == reflect.Slice {
			elem = ft.Elem()
		}
		if elem.Kind() == reflect.Struct && elem != timeType {
			for k, v := range jsonShape(elem, path+".") {
				out[k] = v
			}
		}
	}
	return out
}

func jsonType(t reflect.Type) string {
	if t == timeType {
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "array of " + jsonType(t.Elem())
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return "object"
		}
		return "object of " + jsonType(t.Elem())
	case reflect.Struct:
		return "object"
	}
	return t.Kind().String()
}

func readSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(schematest.Path())
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// resolve follows a local $ref.
func resolve(defs map[string]any, s map[string]any) map[string]any {
	if ref, ok := s["$ref"].(string); ok {
		return resolve(defs, defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any))
	}
	return s
}

// schemaType is the JSON type s allows: its type (with its items' type,
// or its values' type when it is a map), or that of its const or enum
// values.
func schemaType(defs, s map[string]any) string {
	switch t, _ := s["type"].(string); t {
	case "":
	case "array":
		if items, ok := s["items"].(map[string]any); ok {
			return "array of " + schemaType(defs, resolve(defs, items))
		}
		return t
	case "object":
		if values, ok := s["additionalProperties"].(map[string]any); ok {
			return "object of " + schemaType(defs, resolve(defs, values))
		}
		return t
	default:
		return t
	}
	vals, _ := s["enum"].([]any)
	if c, ok := s["const"]; ok {
		vals = []any{c}
	}
	types := map[string]bool{}
	for _, v := range vals {
		switch v := v.(type) {
		case string:
			types["string"] = true
		case float64:
			if v == float64(int64(v)) {
				types["integer"] = true
			} else {
				types["number"] = true
			}
		case bool:
			types["boolean"] = true
		}
	}
	if len(types) == 1 {
		for t := range types {
			return t
		}
	}
	return "?"
}

// schemaShape lists the members an object schema declares, recursively
// into objects with properties and arrays of them.
func schemaShape(defs, s map[string]any, prefix string, out map[string]field) {
	s = resolve(defs, s)
	props, _ := s["properties"].(map[string]any)
	required := map[string]bool{}
	for _, r := range s["required"].([]any) {
		required[r.(string)] = true
	}
	for name, p := range props {
		p := resolve(defs, p.(map[string]any))
		out[prefix+name] = field{typ: schemaType(defs, p), required: required[name]}
		if items, ok := p["items"].(map[string]any); ok {
			p = resolve(defs, items)
		}
		if _, ok := p["properties"]; ok {
			schemaShape(defs, p, prefix+name+".", out)
		}
	}
}

// docRows returns docs/audit.md's field table (| field | type | on |
// meaning |), the cells of each row by field name.
func docRows(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "audit.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n| field | type | on | meaning |\n|---|---|---|---|\n")
	if !ok {
		t.Fatal("docs/audit.md has no field table (| field | type | on | meaning |)")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	rows := map[string][]string{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		if _, dup := rows[name]; dup {
			t.Errorf("docs/audit.md's field table names %q twice", name)
		}
		rows[name] = cells
	}
	return rows
}

// docRow is the meaning cell of name's row.
func docRow(t *testing.T, name string) string {
	t.Helper()
	cells := docRows(t)[name]
	if len(cells) != 4 {
		t.Fatalf("docs/audit.md's field table: row %q has %d cells, want 4", name, len(cells))
	}
	return cells[3]
}

// docTable reads the table's fields, their types as JSON types, and
// whether they are always present: "all" in the "on" column.
func docTable(t *testing.T) map[string]field {
	t.Helper()
	out := map[string]field{}
	for name, cells := range docRows(t) {
		on := strings.TrimSpace(cells[2])
		out[name] = field{typ: docType(strings.TrimSpace(cells[1])), required: on == "all" || strings.HasPrefix(on, "all,")}
	}
	return out
}

// docType is the JSON type the table's type cell names: it says "64 hex"
// or "RFC 3339 string" where the JSON type is string, "bool" for boolean,
// and "array of integers" or "object of strings" for what a list or a map
// holds.
func docType(typ string) string {
	for _, container := range []string{"array", "object"} {
		if held, ok := strings.CutPrefix(typ, container+" of "); ok {
			return container + " of " + docType(strings.TrimSuffix(held, "s"))
		}
	}
	switch {
	case typ == "bool":
		return "boolean"
	case typ == "64 hex", strings.Contains(typ, "string"):
		return "string"
	}
	return typ
}

// compare reports every field one side has and the other has not, and
// every field whose type (and, when required counts, presence) differs.
func compare(t *testing.T, aName string, a map[string]field, bName string, b map[string]field, required bool) {
	t.Helper()
	var names []string
	for n := range a {
		names = append(names, n)
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fa, inA := a[n]
		fb, inB := b[n]
		switch {
		case !inB:
			t.Errorf("%s has %q (%s); %s does not", aName, n, fa.typ, bName)
		case !inA:
			t.Errorf("%s has %q (%s); %s does not", bName, n, fb.typ, aName)
		case fa.typ != fb.typ:
			t.Errorf("%q is %s in %s, %s in %s", n, fa.typ, aName, fb.typ, bName)
		case required && fa.required != fb.required:
			t.Errorf("%q: always present is %v in %s, %v in %s", n, fa.required, aName, fb.required, bName)
		}
	}
}

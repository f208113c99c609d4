package watcher

import (
	"path"
	"reflect"
	"testing"

	"github.com/hostpass/hostpass/audit"
)

// FuzzParsePolicy: any --policy-allow text is refused with an error or
// parses; what parses reads back the same from its String(), and judging a
// container with it never meets a pattern path.Match calls malformed
// (Allows would read that as "no match" and stop a container it allows).
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"", "all", " all ", "label:team=pay", "label:trusted", "image:registry.example/team/*",
		"label:a=b, image:busybox*", "service:ok-*", "stack:mon", "stack:[", "service:", "image:[", "image:a\\", "label:", "label:=x", "nope", ",", "image:[]a]"} {
		f.Add(s, "team", "pay", "registry.example/team/app")
	}
	f.Fuzz(func(t *testing.T, s, key, value, image string) {
		p, err := ParsePolicy(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: an empty error", s)
			}
			return
		}
		again, err := ParsePolicy(p.String())
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("%q parses to %+v, but its String() %q reads back as %+v (%v)", s, p, p.String(), again, err)
		}
		for _, r := range p.rules {
			if r.kind != "label" {
				if _, err := path.Match(r.value, image); err != nil {
					t.Fatalf("%q: accepted image pattern %q is malformed for %q: %v", s, r.value, image, err)
				}
			}
		}
		c := Container{Container: audit.Container{Image: image, Labels: map[string]string{key: value}}}
		if len(p.rules) == 0 && !p.Allows(c) {
			t.Fatalf("%q allows all, yet refuses %+v", s, c)
		}
	})
}

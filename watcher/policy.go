package watcher

import (
	"fmt"
	"path"
	"strings"
)

// Policy says which containers may use hostpass networks. The driver cannot
// refuse them: Join does not name the container. The watcher checks each
// container once Docker reports it connected, records a violation, and, if
// told to, stops the container; until then, the container runs.
type Policy struct {
	rules []rule // empty: all containers are allowed
	text  string
}

type rule struct {
	kind, key, value string // kind "label" (value "" = present) or "image"
}

// ParsePolicy reads "all", or comma-separated rules a container must match
// one of: label:KEY=VALUE, label:KEY (present), image:PATTERN (a glob such as
// registry.example/team/*).
func ParsePolicy(s string) (Policy, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return Policy{text: "all"}, nil
	}
	p := Policy{text: s}
	for _, item := range strings.Split(s, ",") {
		kind, arg, ok := strings.Cut(strings.TrimSpace(item), ":")
		switch {
		case ok && kind == "label" && arg != "":
			key, value, _ := strings.Cut(arg, "=")
			p.rules = append(p.rules, rule{kind: kind, key: key, value: value})
		case ok && kind == "image" && arg != "":
			if _, err := path.Match(arg, ""); err != nil {
				return Policy{}, fmt.Errorf("policy rule %q: bad image pattern: %w", item, err)
			}
			p.rules = append(p.rules, rule{kind: kind, value: arg})
		default:
			return Policy{}, fmt.Errorf("policy rule %q: want all, or rules label:KEY=VALUE, label:KEY or image:PATTERN separated by commas", item)
		}
	}
	return p, nil
}

// Allows reports whether c matches the policy.
func (p Policy) Allows(c Container) bool {
	if len(p.rules) == 0 {
		return true
	}
	for _, r := range p.rules {
		switch r.kind {
		case "label":
			if v, ok := c.Labels[r.key]; ok && (r.value == "" || v == r.value) {
				return true
			}
		case "image":
			if ok, _ := path.Match(r.value, c.Image); ok {
				return true
			}
		}
	}
	return false
}

func (p Policy) String() string { return p.text }

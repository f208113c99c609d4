package watcher

import (
	"fmt"
	"path"
	"strings"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/swarmtask"
)

// Policy says which containers may use hostpass networks. The driver cannot
// refuse them: Join does not name the container. The watcher checks each
// container once Docker reports it connected, records a violation, and, if
// told to, stops the container; until then, the container runs.
//
// Every rule reads the container alone, so a rule decides the same on every
// node of a swarm. That is why there is no rule on a service's own labels
// (`docker service create --label`): swarm keeps them in the service, which
// only a manager can read, and puts none on the task's container. A
// service's `--container-label` is on every task's container: label: rules
// read those.
type Policy struct {
	rules []rule // empty: all containers are allowed
	text  string
}

type rule struct {
	// kind "label" (value "" = present), or a glob on the image ("image"),
	// on a swarm task's service name ("service") or on its stack ("stack").
	kind, key, value string
}

// accepted is what ParsePolicy reads, for its errors and the flag's help.
const accepted = "all, or rules label:KEY=VALUE, label:KEY, image:PATTERN, service:PATTERN or stack:PATTERN separated by commas"

// ParsePolicy reads "all", or comma-separated rules a container must match
// one of: label:KEY=VALUE, label:KEY (present), image:PATTERN (a glob such as
// registry.example/team/*), service:PATTERN (a swarm task's service name,
// such as mon_*) and stack:PATTERN (a swarm task's stack namespace). Globs
// and values are case-sensitive, as path.Match and Docker's names are.
// Spaces around a rule are ignored, spaces inside it at either end of its
// argument refused.
func ParsePolicy(s string) (Policy, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return Policy{text: "all"}, nil
	}
	p := Policy{text: s}
	items := strings.Split(s, ",")
	for i, item := range items {
		kind, arg, ok := strings.Cut(strings.TrimSpace(item), ":")
		key, value, _ := strings.Cut(arg, "=")
		switch {
		case ok && arg != "" && (spaced(arg) || kind == "label" && (spaced(key) || spaced(value))):
			// "service: ok-*" would match no service, and so refuse all.
			return Policy{}, fmt.Errorf("policy rule %q: spaces are not allowed around a rule's argument, key or value (write %s:%s); "+
				"no name swarm or Docker writes starts or ends with one", item, kind, trimmed(kind, arg))
		case ok && kind == "label" && arg != "":
			p.rules = append(p.rules, rule{kind: kind, key: key, value: value})
		case ok && (kind == "image" || kind == "service" || kind == "stack") && arg != "":
			if _, err := path.Match(arg, ""); err != nil {
				if i < len(items)-1 && strings.Count(arg, "[") > strings.Count(arg, "]") {
					return Policy{}, fmt.Errorf("policy rule %q: bad %s pattern (a glob: *, ?, [a-z]): %w; "+
						"rules are split at commas, so a [...] cannot hold one: write a rule for each name", item, kind, err)
				}
				return Policy{}, fmt.Errorf("policy rule %q: bad %s pattern (a glob: *, ?, [a-z]): %w", item, kind, err)
			}
			p.rules = append(p.rules, rule{kind: kind, value: arg})
		default:
			return Policy{}, fmt.Errorf("policy rule %q: want %s", item, accepted)
		}
	}
	return p, nil
}

// Allows reports whether c matches the policy. service: and stack: rules
// match only a swarm task's container, as swarmtask reads its labels.
func (p Policy) Allows(c Container) bool {
	return p.allowsTask(c, swarmtask.FromLabels(c.Labels))
}

// allowsTask is Allows with the swarm identity already read, as a record
// keeps it whole (replay.go): a record's container.labels may be cut to
// its bound, swarm's labels with them.
func (p Policy) allowsTask(c Container, task *audit.SwarmTask) bool {
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
			if glob(r.value, c.Image) {
				return true
			}
		case "service":
			if task != nil && glob(r.value, task.ServiceName) {
				return true
			}
		case "stack":
			if task != nil && task.Stack != "" && glob(r.value, task.Stack) {
				return true
			}
		}
	}
	return false
}

// glob: ParsePolicy has checked the pattern, so Match cannot fail.
func glob(pattern, s string) bool {
	ok, _ := path.Match(pattern, s)
	return ok
}

// trimmed is a rule's argument without the spaces ParsePolicy refuses.
func trimmed(kind, arg string) string {
	key, value, eq := strings.Cut(arg, "=")
	if kind != "label" || !eq {
		return strings.TrimSpace(arg)
	}
	return strings.TrimSpace(key) + "=" + strings.TrimSpace(value)
}

// spaced: s starts or ends with white space.
func spaced(s string) bool { return s != strings.TrimSpace(s) }

func (p Policy) String() string { return p.text }

package tenant

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/steering"
)

// yaml.v3 reports unknown keys and type mismatches in Go terms ("field hosst not
// found in type steering.App", "cannot unmarshal !!str `x` into []string"). An
// administrator thinks in keys and lists, so those messages are rewritten, with a
// suggestion when an unknown key is a typo of a known one.

var (
	reYAMLLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
	reUnknownKey  = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	reTypeMismtch = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// fileKeys maps each Go type of the tenant file to its YAML keys.
var fileKeys = func() map[string][]string {
	m := map[string][]string{}
	for _, v := range []any{Tenant{}, tenantapi.PoPInfo{}, User{}, Publisher{}, SteeringProfile{}, PolicyRule{},
		SecureEnrollment{}, EnrollToken{}, steering.App{}, steering.Exceptions{}, steering.PinnedApp{},
		steering.ClientConfig{}} {
		t := reflect.TypeOf(v)
		for i := 0; i < t.NumField(); i++ {
			if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
				m[t.String()] = append(m[t.String()], k)
			}
		}
	}
	return m
}()

func yamlProblem(e string) Problem {
	var p Problem
	if m := reYAMLLine.FindStringSubmatch(e); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		e = m[2]
	}
	switch m := reUnknownKey.FindStringSubmatch(e); {
	case m != nil:
		p.Msg = "unknown key " + strconv.Quote(m[1])
		if s := closestKey(m[1], fileKeys[m[2]]); s != "" {
			p.Msg += " (did you mean " + strconv.Quote(s) + "?)"
		}
		return p
	}
	if m := reTypeMismtch.FindStringSubmatch(e); m != nil {
		v := m[2]
		if cut, ok := strings.CutSuffix(v, "..."); ok {
			v = cut + "…" // yaml.v3 shortens long values
		}
		p.Msg = strconv.Quote(v) + ": " + expected(m[3])
		return p
	}
	p.Msg = e
	return p
}

func expected(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "expected a list"
	case goType == "bool":
		return "expected true or false"
	case goType == "int" || strings.HasPrefix(goType, "uint"):
		return "expected a number"
	case goType == "string":
		return "expected a string"
	case goType == "time.Time":
		return "expected a date such as 2026-11-23"
	}
	return "expected a mapping of keys"
}

// closestKey returns the known key within edit distance 2 of k, if one.
func closestKey(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// durationKeys are the tenant-file keys decoded by steering.Duration, whose
// errors yaml.v3 reports without a line and after which it stops.
var durationKeys = map[string]bool{"dns_ttl": true, "config_poll": true, "probe_interval": true,
	"reauth_interval": true, "reauth_grace": true}

// locateValueErrors walks the tree for values a custom unmarshaler rejects and
// reports each with its line and path.
func locateValueErrors(root *yaml.Node) []Problem {
	var out []Problem
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i].Value, n.Content[i+1]
				p := k
				if path != "" {
					p = path + "." + k
				}
				if durationKeys[k] {
					var d steering.Duration
					if err := d.UnmarshalYAML(v); err != nil {
						out = append(out, Problem{Line: v.Line, Path: p, Msg: err.Error()})
					}
					continue
				}
				walk(v, p)
			}
		}
	}
	walk(root, "")
	return out
}

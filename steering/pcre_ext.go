package steering

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// skipExtended skips, under (?x), one run of white space or a # comment at
// t.pos and reports whether it did. PCRE2's white space here is Unicode's
// Pattern_White_Space; a comment ends at a line feed (PCRE2's default newline).
func (t *translator) skipExtended() bool {
	r, n := utf8.DecodeRuneInString(t.src[t.pos:])
	switch {
	case isPatternSpace(r):
		t.pos += n
		return true
	case r == '#':
		end := strings.IndexByte(t.src[t.pos:], '\n')
		if end < 0 {
			t.pos = len(t.src)
		} else {
			t.pos += end + 1
		}
		return true
	}
	return false
}

func isPatternSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x85, 0x200E, 0x200F, 0x2028, 0x2029:
		return true
	}
	return false
}

// alternative handles '|': a conditional group has at most two branches, and
// each branch of a branch reset group numbers its groups from the same start.
func (t *translator) alternative() error {
	g := &t.groups[len(t.groups)-1]
	switch {
	case g.cond:
		if g.alts++; g.alts > 1 {
			return t.fail(t.pos, "conditional group with more than two alternatives")
		}
	case g.reset:
		g.max = max(g.max, t.ncap)
		t.ncap = g.base
	}
	t.pos++
	t.emitAssert("|")
	return nil
}

// quantifiedAssertion rewrites a quantifier q on the lookaround that ends the
// output as PCRE2 reads it: {0} never obeys it, a minimum of 0 obeys it at most
// once ({0,1}), any other quantifier obeys it exactly once. It returns the
// quantifier to emit, "" for none.
func (t *translator) quantifiedAssertion(q string) string {
	body := string(t.out[t.atom:])
	t.out = append(t.out[:t.atom], "(?:"+body+")"...)
	lo, hi := 1, -1 // -1: unbounded
	switch q {
	case "*":
		lo = 0
	case "?":
		lo, hi = 0, 1
	case "+":
	default: // {n}, {n,} or {n,m}, checked by braces
		l, h, comma := strings.Cut(strings.Trim(q, "{}"), ",")
		lo, _ = strconv.Atoi(l)
		switch {
		case !comma:
			hi = lo
		case h != "":
			hi, _ = strconv.Atoi(h)
		}
	}
	switch {
	case hi == 0:
		return "{0}"
	case lo == 0:
		return "?"
	}
	return ""
}

// conditional handles (?(N)…|…), (?(<name>)…), (?('name')…), (?(name)…) and
// (?(?=…)…) with the other lookarounds; it rejects the other conditions
// (recursion, DEFINE, VERSION, relative numbers) by name.
func (t *translator) conditional(start int) error {
	if t.behind > 0 {
		return t.fail(start, "conditional group inside a lookbehind (.NET matches lookbehind right to left, so it could answer differently)")
	}
	rest := t.src[start+3:]
	cond := groupState{outStart: len(t.out), srcOff: start, outerM: t.multiline, outerI: t.caseless, outerX: t.extended, cond: true}
	for _, a := range []string{"?=", "?!", "?<=", "?<!"} {
		if strings.HasPrefix(rest, a) {
			t.groups = append(t.groups, cond)
			t.out = append(t.out, "(?"...)
			t.pos = start + 2 // the lookaround is read as usual
			t.atom = -1
			return nil
		}
	}
	end := strings.IndexByte(rest, ')')
	if end < 0 {
		return t.fail(start, "malformed condition in (?(…)")
	}
	name := rest[:end]
	switch {
	case len(name) > 1 && (name[0] == '<' && name[len(name)-1] == '>' || name[0] == '\'' && name[len(name)-1] == '\''):
		name = name[1 : len(name)-1]
	case name == "DEFINE", name == "VERSION", strings.HasPrefix(name, "VERSION"):
		return t.fail(start, "condition (?(%s)…) is not supported", name)
	case strings.HasPrefix(name, "R") && (name == "R" || isDigit(name[1]) || name[1] == '&'):
		return t.fail(start, "recursion condition (?(%s)…) is not supported", name)
	case strings.HasPrefix(name, "+"), strings.HasPrefix(name, "-"):
		return t.fail(start, "relative condition (?(%s)…) is not supported; use the group's number or name", name)
	}
	var r ref
	n, err := strconv.Atoi(name)
	switch {
	case err == nil && isDigit(name[0]) && n == 0:
		return t.fail(start, "condition (?(0)…) names no group")
	case err == nil && isDigit(name[0]):
		r = ref{n: n, off: start}
	case validGroupName(name):
		r = ref{name: name, off: start}
	default:
		return t.fail(start, "malformed condition (?(%s)…)", rest[:end])
	}
	// .NET reads a condition on a name it has not seen yet as a lookahead
	// for that text, so a condition may only test a group opened before it.
	if _, seen := t.names[r.name]; r.name != "" && !seen || r.n > t.ncap {
		return t.fail(start, "condition on a group opened later (?(%s)…) is not supported", name)
	}
	t.refs = append(t.refs, r)
	t.groups = append(t.groups, cond)
	if r.name != "" {
		t.out = append(t.out, "(?("+r.name+")"...)
	} else {
		t.out = append(t.out, "(?("+strconv.Itoa(r.n)+")"...)
	}
	t.pos = start + 3 + end + 1
	t.atom = -1
	return nil
}

package steering

import (
	"strconv"
	"strings"
)

// open handles '(' and every (?…) and (*…) construct.
func (t *translator) open() error {
	start := t.pos
	rest := t.src[start:]
	has := func(p string) bool { return strings.HasPrefix(rest, p) }
	switch {
	case has("(?#"):
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return t.fail(start, "missing ) after (?# comment")
		}
		t.pos += end + 1
		return nil
	case has("(*"):
		return t.fail(start, "backtracking verbs and (*…) options are not supported")
	case has("(?<="), has("(?<!"):
		t.push(rest[:4], start, true)
		t.groups[len(t.groups)-1].behind = true
		t.behind++
	case has("(?="), has("(?!"):
		t.push(rest[:3], start, true)
	case has("(?>") && t.behind > 0:
		return t.fail(start, "atomic group inside a lookbehind (.NET matches lookbehind right to left, so it could commit differently)")
	case has("(?:"), has("(?>"):
		t.push(rest[:3], start, false)
	case has("(?|"):
		t.push("(?:", start, false) // "(?|" is as long as "(?:"
		g := &t.groups[len(t.groups)-1]
		g.reset, g.base, g.max = true, t.ncap, t.ncap
	case has("(?("):
		return t.conditional(start)
	case has("(?C"):
		return t.fail(start, "callouts (?C…) are not supported")
	case has("(?P<"):
		return t.namedGroup(start, 4, '>')
	case has("(?<"):
		return t.namedGroup(start, 3, '>')
	case has("(?'"):
		return t.namedGroup(start, 3, '\'')
	case has("(?P="):
		name, n, err := t.name(start+4, ')')
		if err != nil {
			return err
		}
		t.refs = append(t.refs, ref{name: name, off: start})
		t.pos = n
		t.emitAtom(`\k<` + name + `>`)
	case has("(?P>"), has("(?&"), has("(?R"), len(rest) > 2 && rest[:2] == "(?" && strings.IndexByte("0123456789+-", rest[2]) >= 0 && !isFlagStart(rest[2:]):
		return t.fail(start, "recursion and subroutine calls are not supported")
	case has("(?"):
		return t.flags(start)
	default:
		t.ncap++
		if t.numbered {
			t.push("(", start, false)
			t.out = append(t.out, "?<"+strconv.Itoa(t.ncap)+">"...)
		} else {
			t.push("(", start, false)
		}
	}
	return nil
}

func isFlagStart(s string) bool {
	return len(s) > 1 && s[0] == '-' && (s[1] < '0' || s[1] > '9')
}

func (t *translator) push(prefix string, srcOff int, assert bool) {
	t.groups = append(t.groups, groupState{outStart: len(t.out), srcOff: srcOff, outerM: t.multiline, outerI: t.caseless, outerX: t.extended, assert: assert})
	t.out = append(t.out, prefix...)
	t.pos += len(prefix)
	t.atom = -1
}

func (t *translator) close() error {
	if len(t.groups) == 1 {
		return t.fail(t.pos, "unmatched )")
	}
	g := t.groups[len(t.groups)-1]
	t.groups = t.groups[:len(t.groups)-1]
	t.pos++
	t.out = append(t.out, ')')
	t.multiline, t.caseless, t.extended = g.outerM, g.outerI, g.outerX
	if g.behind {
		t.behind--
	}
	if g.reset {
		t.ncap = max(t.ncap, g.max)
	}
	t.atom, t.assertAtom = g.outStart, g.assert
	return nil
}

func (t *translator) namedGroup(start, skip int, term byte) error {
	name, n, err := t.name(start+skip, term)
	if err != nil {
		return err
	}
	if prev, dup := t.names[name]; dup {
		return t.fail(start, "duplicate group name %q (first at offset %d)", name, prev)
	}
	t.names[name] = start
	t.ncap++
	t.groups = append(t.groups, groupState{outStart: len(t.out), srcOff: start, outerM: t.multiline, outerI: t.caseless, outerX: t.extended})
	t.out = append(t.out, "(?<"+name+">"...)
	t.pos = n
	t.atom = -1
	return nil
}

// name reads a group name at off that ends with term; it returns the name and
// the offset after term.
func (t *translator) name(off int, term byte) (string, int, error) {
	end := strings.IndexByte(t.src[off:], term)
	if end < 0 {
		return "", 0, t.fail(off, "group name not terminated by %q", term)
	}
	name := t.src[off : off+end]
	if !validGroupName(name) {
		return "", 0, t.fail(off, "invalid group name %q (letters, digits and _, not starting with a digit)", name)
	}
	return name, off + end + 1, nil
}

func validGroupName(s string) bool {
	if s == "" || len(s) > 128 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// flags handles (?imsx-imsx) and (?imsx-imsx:…); only i, m and s mean the same
// in both engines.
func (t *translator) flags(start int) error {
	i := start + 2
	on := true
	m, ci, x := t.multiline, t.caseless, t.extended
	seenMinus, xs := false, 0
	for ; i < len(t.src); i++ {
		c := t.src[i]
		switch c {
		case 's':
		case 'i':
			ci = on
		case 'm':
			m = on
		case '-':
			if seenMinus {
				return t.fail(i, "two '-' in a flag group")
			}
			seenMinus, on = true, false
		case ')', ':':
			// .NET has an x flag of its own; the translation has no white
			// space to ignore, so x is dropped.
			spec := strings.TrimSuffix(strings.ReplaceAll(t.src[start+2:i], "x", ""), "-")
			if c == ')' {
				if spec != "" {
					t.out = append(t.out, "(?"+spec+")"...)
				}
				t.multiline, t.caseless, t.extended = m, ci, x
				t.pos = i + 1
				t.atom = -1
				return nil
			}
			t.push("(?"+spec+":", start, false)
			t.pos = i + 1 // push counted the dropped x as well
			t.multiline, t.caseless, t.extended = m, ci, x
			return nil
		case 'x':
			if xs++; xs > 1 {
				return t.fail(i, "extra-extended mode (?xx) is not supported")
			}
			x = on
		case 'n':
			return t.fail(i, "no-auto-capture (?n) is not supported")
		case 'U':
			return t.fail(i, "ungreedy mode (?U) is not supported")
		case 'J':
			return t.fail(i, "duplicate group names (?J) are not supported")
		case '^':
			return t.fail(i, "flag reset (?^) is not supported")
		default:
			return t.fail(i, "unknown group construct or flag %q", c)
		}
	}
	return t.fail(start, "missing ) after (?")
}

package steering

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ASCII class bodies with PCRE2's meaning (no PCRE2_UCP).
const (
	classDigit = `0-9`
	classWord  = `A-Za-z0-9_`
	classSpace = `\t\n\x0B\f\r\x20`
	classH     = `\t\x20\xA0\u1680\u180E\u2000-\u200A\u202F\u205F\u3000`
	classV     = `\n\x0B\f\r\x85\u2028\u2029`
	// wordAt and notWordAt are \b and \B over ASCII word characters.
	wordAt    = `(?-i:(?:(?<=[A-Za-z0-9_])(?![A-Za-z0-9_])|(?<![A-Za-z0-9_])(?=[A-Za-z0-9_])))`
	notWordAt = `(?-i:(?:(?<=[A-Za-z0-9_])(?=[A-Za-z0-9_])|(?<![A-Za-z0-9_])(?![A-Za-z0-9_])))`
	// caretMulti is ^ under (?m): PCRE2 does not match after a final newline.
	caretMulti = `(?:\A|(?<=\n)(?!\z))`
)

var posixClasses = map[string]string{
	"alpha": `A-Za-z`, "digit": `0-9`, "alnum": `A-Za-z0-9`, "upper": `A-Z`, "lower": `a-z`,
	"space": classSpace, "blank": `\t\x20`, "punct": `\x21-\x2F\x3A-\x40\x5B-\x60\x7B-\x7E`,
	"print": `\x20-\x7E`, "graph": `\x21-\x7E`, "cntrl": `\x00-\x1F\x7F`,
	"xdigit": `0-9A-Fa-f`, "word": classWord, "ascii": `\x00-\x7F`,
}

// generalCategories are the Unicode properties both engines name alike.
var generalCategories = map[string]bool{
	"C": true, "Cc": true, "Cf": true, "Cn": true, "Co": true, "Cs": true,
	"L": true, "Ll": true, "Lm": true, "Lo": true, "Lt": true, "Lu": true,
	"M": true, "Mc": true, "Me": true, "Mn": true,
	"N": true, "Nd": true, "Nl": true, "No": true,
	"P": true, "Pc": true, "Pd": true, "Pe": true, "Pf": true, "Pi": true, "Po": true, "Ps": true,
	"S": true, "Sc": true, "Sk": true, "Sm": true, "So": true,
	"Z": true, "Zl": true, "Zp": true, "Zs": true,
}

type groupState struct {
	outStart int  // where the group's '(' is in out
	srcOff   int  // where it is in the pattern
	outerM   bool // the (?m) state outside the group
	outerI   bool // the (?i) state outside the group
	outerX   bool // the (?x) state outside the group
	assert   bool // lookaround: not quantifiable
	behind   bool // lookbehind
	cond     bool // conditional group (?(…)…|…)
	alts     int  // '|' seen at this group's level
	reset    bool // branch reset group (?|…)
	base     int  // branch reset: the group count where each alternative starts
	max      int  // branch reset: the highest group count an alternative reached
}

type ref struct {
	n    int
	name string
	off  int
}

// translator rewrites a PCRE2 pattern into regexp2's dialect (see Pattern).
type translator struct {
	src        string
	pos        int
	out        []byte
	atom       int  // start in out of the last quantifiable item, -1 for none
	assertAtom bool // the last item is a lookaround, which PCRE2 lets be quantified
	groups     []groupState
	multiline  bool
	caseless   bool
	extended   bool // (?x): white space and # comments are not part of the pattern
	numbered   bool // emit capturing groups as (?<N>…), for branch reset
	quote      bool // inside \Q…\E
	behind     int  // open lookbehind groups
	ncap       int
	names      map[string]int
	refs       []ref
}

func (t *translator) fail(off int, format string, args ...any) error {
	return &PatternError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func (t *translator) emitAtom(s string) {
	t.atom, t.assertAtom = len(t.out), false
	t.out = append(t.out, s...)
}

func (t *translator) emitAssert(s string) {
	t.atom = -1
	t.out = append(t.out, s...)
}

func (t *translator) run() error {
	t.atom = -1
	for t.pos < len(t.src) {
		if t.quote {
			t.quoted()
			continue
		}
		if t.extended && t.skipExtended() {
			continue
		}
		var err error
		switch c := t.src[t.pos]; c {
		case '\\':
			err = t.escape()
		case '[':
			err = t.class()
		case '(':
			err = t.open()
		case ')':
			err = t.close()
		case '|':
			err = t.alternative()
		case '^':
			t.pos++
			if t.multiline {
				t.emitAssert(caretMulti)
			} else {
				t.emitAssert("^")
			}
		case '$':
			t.pos++
			t.emitAssert("$")
		case '.':
			t.pos++
			t.emitAtom(".")
		case '*', '+', '?', '{':
			err = t.quantifier()
		default:
			r, n := utf8.DecodeRuneInString(t.src[t.pos:])
			t.pos += n
			t.emitAtom(t.literal(r))
		}
		if err != nil {
			return err
		}
	}
	if len(t.groups) > 1 {
		g := t.groups[len(t.groups)-1]
		return t.fail(len(t.src), "missing ) for the group opened at offset %d", g.srcOff)
	}
	return t.checkRefs()
}

func (t *translator) quoted() {
	if strings.HasPrefix(t.src[t.pos:], `\E`) {
		t.pos += 2
		t.quote = false
		return
	}
	r, n := utf8.DecodeRuneInString(t.src[t.pos:])
	t.pos += n
	t.emitAtom(t.literal(r))
}

// literal spells r outside a class; under (?i), a letter whose case variants
// the engine would not unify by lower-casing (s S ſ, σ Σ ς, …) becomes a class
// of all of them, as PCRE2 matches any of them.
func (t *translator) literal(r rune) string {
	if t.caseless {
		if orbit, ok := foldOrbits()[r]; ok {
			var b strings.Builder
			b.WriteByte('[')
			for _, o := range orbit {
				b.WriteString(classChar(o))
			}
			b.WriteByte(']')
			return b.String()
		}
	}
	return literal(r)
}

// literal spells r so that regexp2 reads exactly r, whatever surrounds it.
func literal(r rune) string {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
		return string(r)
	case r < 0x80:
		return fmt.Sprintf(`\x%02X`, r)
	case r <= 0xFFFF:
		return fmt.Sprintf(`\u%04X`, r)
	}
	return string(r) // astral code points mean nothing special to the engine
}

func (t *translator) checkRefs() error {
	named := len(t.names) > 0
	for _, r := range t.refs {
		if r.n < 0 {
			return t.fail(r.off, "back-reference inside a lookbehind (PCRE2 requires a bounded length)")
		}
		if r.name != "" {
			if _, ok := t.names[r.name]; !ok {
				return t.fail(r.off, "reference to non-existent group %q", r.name)
			}
			continue
		}
		if r.n > t.ncap {
			return t.fail(r.off, "reference to non-existent group %d", r.n)
		}
		if named {
			return t.fail(r.off, "numbered back-reference in a pattern with named groups (the engines number them differently); refer to the group by name")
		}
	}
	return nil
}

// quantifier handles * + ? {n} {n,} {n,m} and their lazy (?) and possessive
// (+) forms; a '{' that does not start a quantifier is a literal.
func (t *translator) quantifier() error {
	start := t.pos
	var q string
	if c := t.src[t.pos]; c == '{' {
		qs, ok, err := t.braces()
		if err != nil {
			return err
		}
		if !ok {
			t.pos++
			t.emitAtom(`\{`)
			return nil
		}
		q = qs
	} else {
		q = string(c)
		t.pos++
	}
	if t.atom < 0 {
		return t.fail(start, "quantifier does not follow a repeatable item")
	}
	if t.assertAtom {
		q = t.quantifiedAssertion(q)
	}
	if t.extended { // PCRE2 skips white space before a + or ? modifier too
		for t.pos < len(t.src) && t.skipExtended() {
		}
	}
	if q == "" { // an assertion obeyed once: a modifier changes nothing
		if t.pos < len(t.src) && (t.src[t.pos] == '+' || t.src[t.pos] == '?') {
			t.pos++
		}
		t.atom = -1
		return nil
	}
	if t.behind > 0 && (q == "*" || q == "+" || strings.HasSuffix(q, ",}")) {
		return t.fail(start, "unbounded repetition inside a lookbehind (PCRE2 requires a bounded length)")
	}
	switch {
	case t.pos < len(t.src) && t.src[t.pos] == '+':
		if t.behind > 0 {
			return t.fail(start, "possessive quantifier inside a lookbehind (.NET matches lookbehind right to left, so it could commit differently)")
		}
		t.pos++ // possessive: X*+ is exactly (?>X*)
		body := string(t.out[t.atom:])
		t.out = append(t.out[:t.atom], "(?>"+body+q+")"...)
	case t.pos < len(t.src) && t.src[t.pos] == '?':
		t.pos++
		t.out = append(t.out, q+"?"...)
	default:
		t.out = append(t.out, q...)
	}
	t.atom = -1 // a quantifier may not follow a quantifier
	return nil
}

// braces parses a {…} quantifier at t.pos. It reports ok=false for a brace
// that PCRE2 reads as a literal.
func (t *translator) braces() (string, bool, error) {
	start := t.pos
	end := strings.IndexByte(t.src[start:], '}')
	if end < 0 {
		return "", false, nil
	}
	body := t.src[start+1 : start+end]
	if strings.Trim(body, "0123456789, \t") != "" || strings.Trim(body, ", \t") == "" {
		return "", false, nil
	}
	if strings.ContainsAny(body, " \t") {
		return "", false, t.fail(start, "quantifier with spaces {%s}: PCRE2 versions read it differently; remove the spaces or escape the brace", body)
	}
	lo, hi, comma := strings.Cut(body, ",")
	if strings.Contains(hi, ",") {
		return "", false, nil
	}
	if lo == "" {
		return "", false, t.fail(start, "{,n} quantifier: PCRE2 10.43 and later read it as {0,n}, earlier versions as literal text; write {0,n} or \\{")
	}
	n, err := strconv.Atoi(lo)
	if err != nil || n > 65535 {
		return "", false, t.fail(start, "number too big in {} quantifier")
	}
	if comma && hi != "" {
		m, err := strconv.Atoi(hi)
		if err != nil || m > 65535 {
			return "", false, t.fail(start, "number too big in {} quantifier")
		}
		if m < n {
			return "", false, t.fail(start, "numbers out of order in {} quantifier")
		}
	}
	t.pos = start + end + 1
	return "{" + body + "}", true, nil
}

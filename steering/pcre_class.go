package steering

import (
	"strings"
	"unicode/utf8"
)

// classItem is one element of a character class: a single character (which
// may start or end a range) or a set such as \d or [:alpha:].
type classItem struct {
	r      rune
	isChar bool
	set    string // class-body text when !isChar; "" for no item (\E, \Q)
}

// Range states of a class, as PCRE2 keeps them: a character that may start a
// range (rangeOK), after an unquoted, unescaped '-' that follows one
// (rangeStarted), or neither (rangeNo).
const (
	rangeNo = iota
	rangeOK
	rangeStarted
)

// class translates a bracketed character class. Every single character is
// re-spelled (so a literal '[' or '-' can never turn into .NET class
// subtraction) and sets are expanded to PCRE2's ASCII meaning. \E and \Q\E
// are nothing to PCRE2 inside a class, so they neither end a range nor start
// one: [a\E-\Ec] is [a-c], and a quoted '-' is a literal.
func (t *translator) class() error {
	start := t.pos
	rest := t.src[start+1:]
	switch {
	case strings.HasPrefix(rest, "[:<:]]"): // POSIX libraries' start of word
		t.pos += 7
		t.emitAssert(`(?-i:(?<![A-Za-z0-9_])(?=[A-Za-z0-9_]))`)
		return nil
	case strings.HasPrefix(rest, "[:>:]]"): // and end of word
		t.pos += 7
		t.emitAssert(`(?-i:(?<=[A-Za-z0-9_])(?![A-Za-z0-9_]))`)
		return nil
	case rest != "" && strings.IndexByte(":.=", rest[0]) >= 0 && posixEnd(rest) > 0:
		return t.fail(start, "POSIX class syntax outside a character class (PCRE2 refuses it; write [[:name:]])")
	}
	t.pos++
	neg := t.classStart()
	var body strings.Builder
	var ranges []portRange32 // single characters and ranges, for (?i) and the body
	state, loOff := rangeNo, 0
	for first := true; ; first = false {
		if t.pos >= len(t.src) {
			return t.fail(start, "missing terminating ] for character class")
		}
		if !t.quote && t.src[t.pos] == ']' && !first {
			t.pos++
			break
		}
		if !t.quote && t.src[t.pos] == '-' && state == rangeOK {
			t.pos++
			state = rangeStarted
			continue
		}
		itemOff := t.pos
		it, err := t.classItem()
		if err != nil {
			return err
		}
		switch {
		case it.isChar && state == rangeStarted:
			lo := &ranges[len(ranges)-1]
			if it.r < lo.lo {
				return t.fail(loOff, "range out of order in character class")
			}
			lo.hi = it.r
			state = rangeNo
		case it.isChar:
			ranges = append(ranges, portRange32{it.r, it.r})
			state, loOff = rangeOK, itemOff
		case it.set != "":
			if err := t.classSet(it.set, itemOff, state); err != nil {
				return err
			}
			body.WriteString(it.set)
			state = rangeNo
		}
	}
	if state == rangeStarted { // [a-] : the '-' is a literal
		ranges = append(ranges, portRange32{'-', '-'})
	}
	for _, r := range ranges {
		body.WriteString(classChar(r.lo))
		if r.hi != r.lo {
			body.WriteString("-" + classChar(r.hi))
		}
	}
	if t.caseless {
		body.WriteString(foldExtras(ranges))
	}
	if body.Len() == 0 {
		return t.fail(start, "empty character class")
	}
	if neg {
		t.emitAtom("[^" + body.String() + "]")
	} else {
		t.emitAtom("[" + body.String() + "]")
	}
	return nil
}

// classStart reads what PCRE2 skips at the start of a class, in any order:
// \E, \Q\E and one '^' (negation). It reports the negation.
func (t *translator) classStart() bool {
	neg := false
	for {
		rest := t.src[t.pos:]
		switch {
		case strings.HasPrefix(rest, `\E`):
			t.pos += 2
		case strings.HasPrefix(rest, `\Q\E`):
			t.pos += 4
		case !neg && strings.HasPrefix(rest, "^"):
			t.pos++
			neg = true
		default:
			return neg
		}
	}
}

// classSet checks a set item (\d, [:alpha:], \p{L}) at off: it cannot end a
// range, PCRE2 refuses a '-' right after it unless the class ends there, and
// under (?i) the engines case-fold \p differently.
func (t *translator) classSet(set string, off, state int) error {
	if state == rangeStarted {
		return t.fail(off, "invalid range in character class")
	}
	if t.pos+1 < len(t.src) && t.src[t.pos] == '-' && t.src[t.pos+1] != ']' {
		return t.fail(off, "invalid range in character class")
	}
	if t.caseless && (strings.Contains(set, `\p`) || strings.Contains(set, `\P`)) {
		return t.fail(off, `\p inside a character class under (?i) is not supported (the engines case-fold it differently)`)
	}
	return nil
}

func classChar(r rune) string {
	if r == '_' {
		return `\x5F`
	}
	return literal(r)
}

func (t *translator) classItem() (classItem, error) {
	if t.quote {
		if strings.HasPrefix(t.src[t.pos:], `\E`) {
			t.pos += 2
			t.quote = false
			return classItem{}, nil
		}
		return t.classRune(), nil
	}
	switch t.src[t.pos] {
	case '[':
		return t.posixClass()
	case '\\':
		return t.classEscape()
	}
	return t.classRune(), nil
}

func (t *translator) classRune() classItem {
	r, n := utf8.DecodeRuneInString(t.src[t.pos:])
	t.pos += n
	return classItem{r: r, isChar: true}
}

// posixClass handles [:name:] inside a class; a '[' that does not start one
// is a literal.
func (t *translator) posixClass() (classItem, error) {
	rest := t.src[t.pos:]
	if len(rest) < 3 || strings.IndexByte(":.=", rest[1]) < 0 {
		return t.classRune(), nil
	}
	end := posixEnd(rest[1:])
	if end < 0 {
		return t.classRune(), nil
	}
	if rest[1] != ':' {
		return classItem{}, t.fail(t.pos, "POSIX collating elements are not supported")
	}
	name := rest[2 : 1+end]
	if strings.HasPrefix(name, "^") {
		return classItem{}, t.fail(t.pos, "negated POSIX class [:%s:] is not supported", name)
	}
	set, ok := posixClasses[name]
	if !ok {
		return classItem{}, t.fail(t.pos, "unknown POSIX class name %q", name)
	}
	t.pos += 1 + end + 2
	return classItem{set: set}, nil
}

// posixEnd is PCRE2's check_posix_syntax: s starts with the terminator
// (':', '.' or '='), and a POSIX item ends at terminator + ']' before any
// unescaped ']' or '[' + terminator. It returns the offset in s of that
// terminator, or -1.
func posixEnd(s string) int {
	term := s[0]
	for i := 1; len(s)-i >= 2; i++ {
		switch {
		case s[i] == '\\' && (s[i+1] == ']' || s[i+1] == '\\'):
			i++
		case s[i] == '[' && s[i+1] == term, s[i] == ']':
			return -1
		case s[i] == term && s[i+1] == ']':
			return i
		}
	}
	return -1
}

func (t *translator) classEscape() (classItem, error) {
	start := t.pos
	t.pos++
	if t.pos >= len(t.src) {
		return classItem{}, t.fail(start, `\ at end of pattern`)
	}
	c := t.src[t.pos]
	if c >= utf8.RuneSelf || !isAlnum(c) {
		return t.classRune(), nil
	}
	t.pos++
	switch c {
	case 'd':
		return classItem{set: classDigit}, nil
	case 'w':
		return classItem{set: classWord}, nil
	case 's':
		return classItem{set: classSpace}, nil
	case 'h':
		return classItem{set: classH}, nil
	case 'v':
		return classItem{set: classV}, nil
	case 'D', 'W', 'S', 'H', 'V':
		return classItem{}, t.fail(start, `negated escape \%c inside a character class is not supported`, c)
	case 'b':
		return classItem{r: 8, isChar: true}, nil
	case 'Q':
		t.quote = true
		return classItem{}, nil
	case 'E':
		return classItem{}, nil
	case 'p', 'P':
		s, err := t.property(start, c)
		return classItem{set: s}, err
	}
	if isDigit(c) && c != '0' {
		return classItem{}, t.fail(start, `\%c inside a character class is not supported (use \o{…} or \x{…})`, c)
	}
	r, ok, err := t.codePoint(start, c)
	if err != nil {
		return classItem{}, err
	}
	if !ok {
		return classItem{}, t.fail(start, "%s", unsupportedEscape(c))
	}
	return classItem{r: r, isChar: true}, nil
}

type portRange32 struct{ lo, hi rune }

// foldExtras returns, for a class under (?i), the case variants that the
// engine's lower-casing misses: every member of a fold orbit that meets one of
// the class's ranges (PCRE2 matches a character if any of its case variants is
// in the class).
func foldExtras(ranges []portRange32) string {
	var b strings.Builder
	for _, orbit := range foldOrbitList() {
		hit := false
		for _, o := range orbit {
			for _, r := range ranges {
				if o >= r.lo && o <= r.hi {
					hit = true
				}
			}
		}
		if hit {
			for _, o := range orbit {
				b.WriteString(classChar(o))
			}
		}
	}
	return b.String()
}

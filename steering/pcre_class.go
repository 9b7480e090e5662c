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

// class translates a bracketed character class. Every single character is
// re-spelled (so a literal '[' or '-' can never turn into .NET class
// subtraction) and sets are expanded to PCRE2's ASCII meaning.
func (t *translator) class() error {
	start := t.pos
	t.pos++
	var body strings.Builder
	neg := false
	if t.pos < len(t.src) && t.src[t.pos] == '^' {
		neg = true
		t.pos++
	}
	first := true
	var ranges []portRange32 // single characters and ranges, for (?i)
	for {
		if t.pos >= len(t.src) {
			return t.fail(start, "missing terminating ] for character class")
		}
		if !t.quote && t.src[t.pos] == ']' && !first {
			t.pos++
			break
		}
		first = false
		itemOff := t.pos
		it, err := t.classItem()
		if err != nil {
			return err
		}
		dash := !t.quote && t.pos+1 < len(t.src) && t.src[t.pos] == '-' && t.src[t.pos+1] != ']'
		if !it.isChar {
			if dash && it.set != "" {
				return t.fail(itemOff, "invalid range in character class")
			}
			if t.caseless && strings.Contains(it.set, `\p`) || t.caseless && strings.Contains(it.set, `\P`) {
				return t.fail(itemOff, `\p inside a character class under (?i) is not supported (the engines case-fold it differently)`)
			}
			body.WriteString(it.set)
			continue
		}
		if !dash {
			body.WriteString(classChar(it.r))
			ranges = append(ranges, portRange32{it.r, it.r})
			continue
		}
		hi, err := t.rangeEnd(it.r, itemOff)
		if err != nil {
			return err
		}
		body.WriteString(classChar(it.r) + "-" + classChar(hi))
		ranges = append(ranges, portRange32{it.r, hi})
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

// rangeEnd reads the end of a range whose '-' is at t.pos.
func (t *translator) rangeEnd(lo rune, loOff int) (rune, error) {
	t.pos++ // the '-'
	hiOff := t.pos
	hi, err := t.classItem()
	if err != nil {
		return 0, err
	}
	if !hi.isChar {
		return 0, t.fail(hiOff, "invalid range in character class")
	}
	if hi.r < lo {
		return 0, t.fail(loOff, "range out of order in character class")
	}
	return hi.r, nil
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
	if len(rest) > 1 && (rest[1] == '.' || rest[1] == '=') && strings.Contains(rest[2:], string(rest[1])+"]") {
		return classItem{}, t.fail(t.pos, "POSIX collating elements are not supported")
	}
	if !strings.HasPrefix(rest, "[:") {
		return t.classRune(), nil
	}
	end := strings.Index(rest[2:], ":]")
	if end < 0 {
		return t.classRune(), nil
	}
	name := rest[2 : 2+end]
	if strings.HasPrefix(name, "^") {
		return classItem{}, t.fail(t.pos, "negated POSIX class [:%s:] is not supported", name)
	}
	set, ok := posixClasses[name]
	if !ok {
		return classItem{}, t.fail(t.pos, "unknown POSIX class name %q", name)
	}
	t.pos += 2 + end + 2
	return classItem{set: set}, nil
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

package steering

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// shorthands are the class escapes outside a class, with PCRE2's ASCII
// meaning. \w is fenced from (?i), which in .NET would let it match the Kelvin
// sign (it lower-cases to k); PCRE2's \w never matches it.
var shorthands = map[byte]string{
	'd': `[` + classDigit + `]`,
	'D': `[^` + classDigit + `]`,
	'w': `(?-i:[` + classWord + `])`,
	'W': `(?-i:[^` + classWord + `])`,
	's': `[` + classSpace + `]`,
	'S': `[^` + classSpace + `]`,
	'h': `[` + classH + `]`,
	'H': `[^` + classH + `]`,
	'v': `[` + classV + `]`,
	'V': `[^` + classV + `]`,
	'R': `(?>\r\n|[` + classV + `])`,
}

// escape handles a backslash sequence outside a character class.
func (t *translator) escape() error {
	start := t.pos
	t.pos++
	if t.pos >= len(t.src) {
		return t.fail(start, `\ at end of pattern`)
	}
	c := t.src[t.pos]
	if c >= utf8.RuneSelf || !isAlnum(c) {
		r, n := utf8.DecodeRuneInString(t.src[t.pos:])
		t.pos += n
		t.emitAtom(t.literal(r))
		return nil
	}
	t.pos++
	if set, ok := shorthands[c]; ok {
		t.emitAtom(set)
		return nil
	}
	switch c {
	case 'b':
		t.emitAssert(wordAt)
	case 'B':
		t.emitAssert(notWordAt)
	case 'A', 'z', 'Z', 'G':
		t.emitAssert(`\` + string(c))
	case 'Q':
		t.quote = true
	case 'E':
		// An \E without \Q is ignored by PCRE2.
	case 'K':
		// \K moves the start of the reported match, which a verdict does
		// not show; PCRE2 refuses it inside a lookaround.
		for _, g := range t.groups {
			if g.assert {
				return t.fail(start, `\K inside a lookaround is not supported (PCRE2 refuses it)`)
			}
		}
		t.emitAssert("")
	case 'g':
		return t.gRef(start)
	case 'k':
		return t.kRef(start)
	case 'p', 'P':
		s, err := t.property(start, c)
		if err != nil {
			return err
		}
		// PCRE2: "caseless matching does not affect" \p; .NET would
		// lower-case the subject first, so \p{Lu} would fail on 'A'.
		t.emitAtom(`(?-i:` + s + `)`)
	case '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if t.pos < len(t.src) && isDigit(t.src[t.pos]) {
			return t.fail(start, `multi-digit escape \%c%c…: PCRE2 reads it as a back-reference or an octal code depending on the group count; use \g{N} or \o{…}`, c, t.src[t.pos])
		}
		t.backref(int(c-'0'), start)
	default:
		r, ok, err := t.codePoint(start, c)
		if err != nil {
			return err
		}
		if !ok {
			return t.fail(start, "%s", unsupportedEscape(c))
		}
		t.emitAtom(t.literal(r))
	}
	return nil
}

func (t *translator) backref(n, off int) {
	if t.behind > 0 {
		t.refs = append(t.refs, ref{n: -1, off: off}) // reported by checkRefs
	}
	t.refs = append(t.refs, ref{n: n, off: off})
	t.emitAtom(`(?:\` + strconv.Itoa(n) + `)`)
}

func unsupportedEscape(c byte) string {
	switch c {
	case 'N':
		return `\N is not supported`
	case 'X':
		return `\X (extended grapheme cluster) is not supported`
	case 'C':
		return `\C (single code unit) is not supported`
	case 'u', 'U', 'l', 'L':
		return `PCRE2 does not support \` + string(c)
	}
	return `unrecognized escape \` + string(c)
}

// codePoint decodes the escapes that stand for one character: \a \e \f \n \r \t
// \0oo \o{…} \xhh \x{…} \cX. ok is false for other letters.
func (t *translator) codePoint(start int, c byte) (r rune, ok bool, err error) {
	switch c {
	case 'a':
		return 7, true, nil
	case 'e':
		return 0x1B, true, nil
	case 'f':
		return '\f', true, nil
	case 'n':
		return '\n', true, nil
	case 'r':
		return '\r', true, nil
	case 't':
		return '\t', true, nil
	case '0':
		v, n := 0, 0
		for n < 2 && t.pos < len(t.src) && t.src[t.pos] >= '0' && t.src[t.pos] <= '7' {
			v = v*8 + int(t.src[t.pos]-'0')
			t.pos++
			n++
		}
		return rune(v), true, nil
	case 'o':
		if t.pos >= len(t.src) || t.src[t.pos] != '{' {
			return 0, false, t.fail(start, `\o must be followed by {octal digits}`)
		}
		return t.bracedNumber(start, 8)
	case 'x':
		if t.pos < len(t.src) && t.src[t.pos] == '{' {
			return t.bracedNumber(start, 16)
		}
		v, n := 0, 0
		for n < 2 && t.pos < len(t.src) && isHex(t.src[t.pos]) {
			d, _ := strconv.ParseUint(t.src[t.pos:t.pos+1], 16, 8)
			v = v*16 + int(d)
			t.pos++
			n++
		}
		return rune(v), true, nil
	case 'c':
		if t.pos >= len(t.src) || t.src[t.pos] < 0x20 || t.src[t.pos] > 0x7E {
			return 0, false, t.fail(start, `\c must be followed by a printable ASCII character`)
		}
		x := t.src[t.pos]
		t.pos++
		if x >= 'a' && x <= 'z' {
			x -= 'a' - 'A'
		}
		return rune(x ^ 0x40), true, nil
	}
	return 0, false, nil
}

// bracedNumber reads {digits} in base at t.pos as a code point.
func (t *translator) bracedNumber(start, base int) (rune, bool, error) {
	end := strings.IndexByte(t.src[t.pos:], '}')
	if end < 0 {
		return 0, false, t.fail(start, "missing } in escape")
	}
	digits := strings.TrimSpace(t.src[t.pos+1 : t.pos+end])
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil || digits == "" {
		return 0, false, t.fail(start, "invalid number in escape")
	}
	if v > utf8.MaxRune || (v >= 0xD800 && v <= 0xDFFF) {
		return 0, false, t.fail(start, "code point out of range in escape")
	}
	t.pos += end + 1
	return rune(v), true, nil
}

// gRef handles \gN, \g{N} and \g{name}; relative references and \g<…>
// subroutine calls are rejected.
func (t *translator) gRef(start int) error {
	rest := t.src[t.pos:]
	var body string
	switch {
	case strings.HasPrefix(rest, "{"):
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return t.fail(start, `missing } in \g{…}`)
		}
		body = rest[1:end]
		t.pos += end + 1
	case strings.HasPrefix(rest, "<"), strings.HasPrefix(rest, "'"):
		return t.fail(start, `subroutine calls \g<…> are not supported`)
	default:
		n := 0
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		body = rest[:n]
		t.pos += n
	}
	if body == "" {
		return t.fail(start, `\g must be followed by a group number or {name}`)
	}
	if body[0] == '-' || body[0] == '+' {
		return t.fail(start, `relative back-references \g{%s} are not supported; use the group's number or name`, body)
	}
	if isDigit(body[0]) {
		n, err := strconv.Atoi(body)
		if err != nil || n == 0 || n > 9 {
			return t.fail(start, `back-reference \g{%s}: only groups 1 to 9 are supported`, body)
		}
		t.backref(n, start)
		return nil
	}
	if !validGroupName(body) {
		return t.fail(start, "invalid group name %q", body)
	}
	t.refs = append(t.refs, ref{name: body, off: start})
	t.emitAtom(`\k<` + body + `>`)
	return nil
}

// kRef handles \k<name>, \k'name' and \k{name}.
func (t *translator) kRef(start int) error {
	if t.pos >= len(t.src) {
		return t.fail(start, `\k must be followed by <name>, 'name' or {name}`)
	}
	term := map[byte]byte{'<': '>', '\'': '\'', '{': '}'}[t.src[t.pos]]
	if term == 0 {
		return t.fail(start, `\k must be followed by <name>, 'name' or {name}`)
	}
	name, n, err := t.name(t.pos+1, term)
	if err != nil {
		return err
	}
	t.pos = n
	t.refs = append(t.refs, ref{name: name, off: start})
	t.emitAtom(`\k<` + name + `>`)
	return nil
}

// property handles \pL, \p{Lu}, \p{^L} and \P…, allowing only general
// categories (script names differ between the engines).
func (t *translator) property(start int, c byte) (string, error) {
	if t.pos >= len(t.src) {
		return "", t.fail(start, `\%c must be followed by a property name`, c)
	}
	var name string
	if t.src[t.pos] == '{' {
		end := strings.IndexByte(t.src[t.pos:], '}')
		if end < 0 {
			return "", t.fail(start, `missing } in \%c{…}`, c)
		}
		name = t.src[t.pos+1 : t.pos+end]
		t.pos += end + 1
	} else {
		name = t.src[t.pos : t.pos+1]
		t.pos++
	}
	neg := c == 'P'
	if strings.HasPrefix(name, "^") {
		neg, name = !neg, name[1:]
	}
	if !generalCategories[name] {
		return "", t.fail(start, "Unicode property %q is not supported (only general categories such as L, Lu, Nd)", name)
	}
	if neg {
		return `\P{` + name + `}`, nil
	}
	return `\p{` + name + `}`, nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

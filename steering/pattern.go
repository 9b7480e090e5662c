package steering

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// PatternTimeout bounds one match of one pinned-app pattern. The engine
// backtracks, so a pathological pattern could otherwise stall the data path; the
// engine's clock ticks every 100 ms, so a timeout fires within about twice this.
const PatternTimeout = 100 * time.Millisecond

// maxPatternLen bounds the length of a pattern in bytes.
const maxPatternLen = 4096

// Errors MatchString may return; either way the subject counts as not matching.
var (
	// ErrPatternTimeout: the match ran longer than PatternTimeout. The snapshot
	// treats the flow as not excepted (it is steered as its app says) and says so
	// in the Decision's Reason; logging it is the caller's job.
	ErrPatternTimeout = errors.New("pattern match timed out")
	// ErrSubjectUTF8: PCRE2 in UTF mode refuses subjects that are not UTF-8.
	ErrSubjectUTF8 = errors.New("subject is not valid UTF-8")
)

// Pattern is a compiled pinned-app pattern with PCRE2 semantics (PCRE2_UTF, no
// other options): what administrators test on regex101 is what matches here.
//
// The engine is regexp2 (a port of .NET's backtracking engine) in its native
// mode. Every construct where .NET and PCRE2 differ is rewritten into an exact
// equivalent or rejected with its name:
//
//   - \d \w \s \h \v \R \b \B and POSIX classes such as [[:alpha:]] are ASCII-only
//     in PCRE2 (as without PCRE2_UCP) and are spelled out as explicit classes;
//   - possessive quantifiers (a*+, a{2,}+) become atomic groups ((?>a*));
//   - \Q…\E becomes escaped literals, \x{…} \o{…} \0nn \cX become code points,
//     (?P<n>…) (?P=n) \k{n} \g{N} become their .NET spellings;
//   - a literal '[' or '-' inside a class is escaped, so .NET never reads
//     class subtraction into it; ^ under (?m) keeps PCRE2's rule that it does
//     not match after a newline that ends the subject;
//   - under (?i), letters whose case variants .NET does not unify by
//     lower-casing (s S ſ, σ Σ ς, µ μ Μ, …) match all their variants, as in
//     PCRE2, and \p{…} ignores (?i) as PCRE2 says it does;
//   - inside a class, \E and \Q\E are nothing (they neither end nor start a
//     range) and a quoted '-' is a literal, as in PCRE2;
//   - (?x) drops white space (Unicode Pattern_White_Space) and # comments up
//     to a line feed; conditionals (?(N)…|…), (?(<name>)…), (?('name')…),
//     (?(name)…) and (?(?=…)…) on groups opened before them are passed on;
//     branch reset (?|…) numbers groups explicitly ((?<1>…)); \K (which moves
//     only the reported start) is dropped; a quantified lookaround is obeyed
//     once, at most once or never, as PCRE2 reads {1}, {0,1} and {0};
//   - rejected: {,n} and quantifiers with spaces (read differently by PCRE2
//     versions), recursion, DEFINE and relative conditions, conditions on a
//     group opened later, recursion and subroutine calls, backtracking verbs
//     and (*…) options, callouts, named groups with branch reset, \K inside
//     a lookaround, \N, \X, \C, \u \U \l \L, negated class escapes and
//     negated POSIX classes inside a class, \p inside a class under (?i),
//     Unicode script and special properties, flags other than i, m, s, x,
//     numbered back-references in patterns with named groups (.NET numbers
//     those last), and back-references above \9.
//
// testdata/regex/pcre2.tsv holds PCRE2's own answers (libpcre2-8, PCRE2_UTF)
// for every pattern and subject there; the tests hold this type to them.
// Lookbehind: unbounded repetition, back-references, atomic groups and
// possessive quantifiers inside a lookbehind are rejected (PCRE2 refuses the
// first; .NET matches lookbehind right to left, so the others could answer
// differently); bounded variable-length lookbehind,
// which PCRE2 accepts from 10.43 (and regex101 with it), is accepted.
type Pattern struct {
	expr string
	net  string
	re   *regexp2.Regexp
}

// PatternError reports why a pattern was rejected and where.
type PatternError struct {
	Offset int // byte offset in the pattern
	Reason string
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("invalid pattern at offset %d: %s", e.Offset, e.Reason)
}

// CompilePattern compiles a PCRE2-style pattern (see Pattern).
func CompilePattern(expr string) (*Pattern, error) {
	if len(expr) > maxPatternLen {
		return nil, &PatternError{Offset: maxPatternLen, Reason: fmt.Sprintf("pattern longer than %d bytes", maxPatternLen)}
	}
	if !utf8.ValidString(expr) {
		return nil, &PatternError{Offset: invalidUTF8At(expr), Reason: "pattern is not valid UTF-8"}
	}
	// Branch reset gives groups of different branches one number; .NET does
	// that for groups numbered explicitly, (?<1>…).
	numbered := strings.Contains(expr, "(?|")
	tr := translator{src: expr, groups: []groupState{{}}, names: make(map[string]int), numbered: numbered}
	if err := tr.run(); err != nil {
		return nil, err
	}
	if numbered && len(tr.names) > 0 {
		return nil, &PatternError{Offset: strings.Index(expr, "(?|"), Reason: "named groups in a pattern with a branch reset group (?|…) are not supported"}
	}
	re, err := regexp2.Compile(string(tr.out), regexp2.None)
	if err != nil {
		// The translation only emits constructs both engines share, so this
		// is a construct PCRE2 rejects too (e.g. a reversed range).
		return nil, &PatternError{Offset: 0, Reason: strings.TrimPrefix(err.Error(), "error parsing regexp: ")}
	}
	re.MatchTimeout = PatternTimeout
	return &Pattern{expr: expr, net: string(tr.out), re: re}, nil
}

// MatchString reports whether the pattern matches anywhere in s.
func (p *Pattern) MatchString(s string) (bool, error) {
	if !utf8.ValidString(s) {
		return false, ErrSubjectUTF8
	}
	ok, err := p.re.MatchString(s)
	if err != nil {
		return false, ErrPatternTimeout // regexp2's only match error; its text quotes the subject
	}
	return ok, nil
}

// String returns the pattern as written.
func (p *Pattern) String() string { return p.expr }

// Translated returns the pattern as handed to the engine, for ztdiag.
func (p *Pattern) Translated() string { return p.net }

func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return 0
}

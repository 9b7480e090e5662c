package steering

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
)

type corpusCase struct{ pattern, subject, want string }

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	f, err := os.Open("../testdata/regex/pcre2.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) != 3 {
			t.Fatalf("bad corpus line %q", line)
		}
		out = append(out, corpusCase{parts[0], parts[1], parts[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPCRE2Corpus checks CompilePattern against answers PCRE2 itself gave
// (testdata/regex/gen.sh): a pattern PCRE2 rejects must be rejected, and an
// accepted pattern must agree with PCRE2 on every subject. Rejecting a pattern
// PCRE2 accepts is allowed only for the constructs listed in rejected.
func TestPCRE2Corpus(t *testing.T) {
	rejected := map[string]string{ // pattern → the construct the error must name
		`a{,3}`:           "{,n} quantifier",
		`\N`:              `\N`,
		`(*UTF)abc`:       "(*…)",
		`^x{ 2}$`:         "quantifier with spaces",
		`^\p{Greek}+$`:    `"Greek"`,
		`(?U)a+`:          "(?U)",
		`^[[:^alpha:]]+$`: "negated POSIX class",
		`^[\W]+$`:         `negated escape \W`,
		`\101`:            "multi-digit escape",
		`a(?R)?b`:         "recursion",
		`(?1)(a)`:         "recursion",
		`(?i)^[\p{Lu}]$`:  `\p inside a character class under (?i)`,
		// .NET matches a lookbehind right to left, so \1 would run before (a)
		// captured: the answers differ, so the pattern must be refused.
		`(?<=(a)\1)b`: "back-reference inside a lookbehind",
		// The hard corners: constructs PCRE2 accepts that are refused, by name.
		`^(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)\10$`: "multi-digit escape",
		`^(?<n>a)(b)\2$`:                      "numbered back-reference in a pattern with named groups",
		`^\p{L&}+$`:                           `"L&"`,
		`^\p{Any}$`:                           `"Any"`,
		`^\p{Xan}+$`:                          `"Xan"`,
		`^\p{Han}+$`:                          `"Han"`,
		`^\p{ Lu }$`:                          `" Lu "`,
		`(?^)a`:                               "(?^)",
		`(?^i)a`:                              "(?^)",
		`(?n)(a)`:                             "(?n)",
		`(?J)(?<n>a)`:                         "(?J)",
		`(?xx)[ a]b`:                          "(?xx)",
		`(?x)^a{ 2 }$`:                        "quantifier with spaces",
		`(?(R)a|b)`:                           "recursion condition",
		`(?(DEFINE)(a))b`:                     "(?(DEFINE)",
		`^(a)?(?(+1)b)(c)`:                    "relative condition",
		`(?(n)a)(?<n>b)`:                      "condition on a group opened later",
		`(?|(?<n>a)|(?<n>b))`:                 "duplicate group name",
		`^\X$`:                                `\X`,
		`\C`:                                  `\C`,
	}
	// PCRE2 10.42 (the oracle here) refuses bounded variable-length lookbehind;
	// PCRE2 10.43 and later (regex101) accept it with the meaning it has here.
	acceptedNewer := map[string]bool{`(?<=a{1,2})b`: true}
	byPattern := map[string][]corpusCase{}
	var order []string
	for _, c := range loadCorpus(t) {
		if _, ok := byPattern[c.pattern]; !ok {
			order = append(order, c.pattern)
		}
		byPattern[c.pattern] = append(byPattern[c.pattern], c)
	}
	var right, wrong, refused, refusedToo int
	for _, p := range order {
		cases := byPattern[p]
		ok := t.Run(p, func(t *testing.T) {
			re, err := CompilePattern(p)
			pcreErr := cases[0].want == "error"
			if err != nil {
				if !pcreErr && !strings.Contains(err.Error(), rejected[p]) || !pcreErr && rejected[p] == "" {
					t.Fatalf("rejected although PCRE2 accepts it and it is not a known-unsupported construct: %v", err)
				}
				if pcreErr {
					refusedToo++
				} else {
					refused++
				}
				return
			}
			if rejected[p] != "" {
				t.Fatalf("accepted, but expected rejection naming %q", rejected[p])
			}
			if pcreErr && !acceptedNewer[p] {
				t.Fatalf("accepted (as %q) but PCRE2 rejects it", re.Translated())
			}
			for _, c := range cases {
				if pcreErr {
					break
				}
				got, err := re.MatchString(c.subject)
				if err != nil && !errors.Is(err, ErrPatternTimeout) { // a timeout counts as no match
					t.Fatalf("subject %q: %v", c.subject, err)
				}
				if (c.want == "match") != got {
					t.Errorf("subject %q: got match=%v, PCRE2 says %s (translated %q)", c.subject, got, c.want, re.Translated())
				}
			}
		})
		if !ok {
			wrong++
		}
	}
	right = len(order) - wrong - refused - refusedToo
	// The README's figures come from this line (go test -v -run PCRE2Corpus ./steering/).
	t.Logf("corpus: %d patterns x %d subjects: %d right (same verdict on every subject), %d refused as PCRE2 refuses them, %d wrong, %d rejected naming the construct although PCRE2 accepts them",
		len(order), len(byPattern[order[0]]), right, refusedToo, wrong, refused)
}

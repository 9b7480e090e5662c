package steering

import (
	"slices"
	"sync"
	"unicode"
)

// foldTables lists the case-fold orbits (sets of characters that are the same
// letter ignoring case, per Unicode simple case folding, which PCRE2 uses) that
// regexp2 does not unify: it compares lower-cased characters, and for these
// orbits not every member lower-cases to the same character (s S ſ; σ Σ ς;
// θ Θ ϑ; µ μ Μ; …). They are computed once, on first use.
var foldTables = sync.OnceValues(func() (map[rune][]rune, [][]rune) {
	byRune := make(map[rune][]rune)
	var list [][]rune
	for r := rune(0); r <= 0x1FFFF; r++ {
		if _, done := byRune[r]; done || unicode.SimpleFold(r) == r {
			continue
		}
		orbit := []rune{r}
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			orbit = append(orbit, f)
		}
		lower := unicode.ToLower(orbit[0])
		unified := true
		for _, o := range orbit[1:] {
			if unicode.ToLower(o) != lower {
				unified = false
			}
		}
		if unified {
			continue
		}
		slices.Sort(orbit)
		list = append(list, orbit)
		for _, o := range orbit {
			byRune[o] = orbit
		}
	}
	return byRune, list
})

func foldOrbits() map[rune][]rune {
	m, _ := foldTables()
	return m
}

func foldOrbitList() [][]rune {
	_, l := foldTables()
	return l
}

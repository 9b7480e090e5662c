package steering

import (
	"net/netip"
	"slices"
)

type interval struct{ lo, hi u128 }

// mergeIntervals converts prefixes of one family to sorted, merged intervals.
func mergeIntervals(ps []netip.Prefix) []interval {
	iv := make([]interval, 0, len(ps))
	for _, p := range ps {
		lo, hi, _ := prefixBounds(p)
		iv = append(iv, interval{lo, hi})
	}
	slices.SortFunc(iv, func(a, b interval) int {
		switch {
		case a.lo.less(b.lo):
			return -1
		case b.lo.less(a.lo):
			return 1
		}
		return 0
	})
	out := iv[:0]
	for _, x := range iv {
		if n := len(out); n > 0 {
			next, overflow := out[n-1].hi.addOne()
			if overflow || !next.less(x.lo) { // touches or overlaps
				if out[n-1].hi.less(x.hi) {
					out[n-1].hi = x.hi
				}
				continue
			}
		}
		out = append(out, x)
	}
	return out
}

// subtractPrefixes returns the addresses of in that are not in minus, as the
// minimal list of CIDRs in ascending order. All prefixes are of one family.
func subtractPrefixes(in, minus []netip.Prefix) []netip.Prefix {
	if len(in) == 0 {
		return nil
	}
	return subtractIntervals(mergeIntervals(in), mergeIntervals(minus), in[0].Addr().Is4())
}

// subtractIntervals returns the addresses of a that are not in b (both sorted
// and merged, of one family: IPv4 when is4) as the minimal list of CIDRs in
// ascending order.
func subtractIntervals(a, b []interval, is4 bool) []netip.Prefix {
	var out []netip.Prefix
	j := 0
	for _, x := range a {
		for j < len(b) && b[j].hi.less(x.lo) {
			j++
		}
		lo, covered := x.lo, false
		for ; j < len(b) && !x.hi.less(b[j].lo); j++ {
			if lo.less(b[j].lo) {
				out = append(out, rangePrefixes(lo.addr(is4), b[j].lo.subOne().addr(is4))...)
			}
			if !b[j].hi.less(x.hi) {
				covered = true // b[j] covers the rest of x and may reach into the next x
				break
			}
			lo, _ = b[j].hi.addOne()
		}
		if !covered {
			out = append(out, rangePrefixes(lo.addr(is4), x.hi.addr(is4))...)
		}
	}
	return out
}

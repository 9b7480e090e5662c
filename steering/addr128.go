package steering

import (
	"math/bits"
	"net/netip"
)

// u128 is an address as a 128-bit integer. IPv4 addresses live in the IPv4-mapped
// range ::ffff:0:0/96 so that one table serves both families; configs may not name
// 4in6 addresses themselves, so the two never collide.
type u128 struct{ hi, lo uint64 }

func u128From(a netip.Addr) u128 {
	b := a.Unmap().As16() // As16 maps IPv4 into ::ffff:0:0/96
	return u128{
		hi: uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
			uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]),
		lo: uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
			uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15]),
	}
}

func (u u128) addr(is4 bool) netip.Addr {
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(u.hi >> (56 - 8*i))
		b[8+i] = byte(u.lo >> (56 - 8*i))
	}
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

func (u u128) less(v u128) bool { return u.hi < v.hi || (u.hi == v.hi && u.lo < v.lo) }

func (u u128) addOne() (u128, bool) {
	lo, c := bits.Add64(u.lo, 1, 0)
	hi, c := bits.Add64(u.hi, 0, c)
	return u128{hi, lo}, c != 0
}

func (u u128) subOne() u128 {
	lo, b := bits.Sub64(u.lo, 1, 0)
	hi, _ := bits.Sub64(u.hi, 0, b)
	return u128{hi, lo}
}

// hostMask returns the mask of the low 128-bits bits (the host part of a /bits).
func hostMask(pbits int) u128 {
	h := 128 - pbits
	switch {
	case h <= 0:
		return u128{}
	case h < 64:
		return u128{0, 1<<uint(h) - 1}
	case h == 64:
		return u128{0, ^uint64(0)}
	case h < 128:
		return u128{1<<uint(h-64) - 1, ^uint64(0)}
	}
	return u128{^uint64(0), ^uint64(0)}
}

func (u u128) or(v u128) u128     { return u128{u.hi | v.hi, u.lo | v.lo} }
func (u u128) andNot(v u128) u128 { return u128{u.hi &^ v.hi, u.lo &^ v.lo} }
func (u u128) and(v u128) u128    { return u128{u.hi & v.hi, u.lo & v.lo} }

// trailingZeros counts trailing zero bits (128 for zero).
func (u u128) trailingZeros() int {
	if u.lo != 0 {
		return bits.TrailingZeros64(u.lo)
	}
	if u.hi != 0 {
		return 64 + bits.TrailingZeros64(u.hi)
	}
	return 128
}

// prefixBounds returns the first and last address of p in u128 form, with p's
// length in the 128-bit space.
func prefixBounds(p netip.Prefix) (lo, hi u128, bits128 int) {
	p = p.Masked()
	bits128 = p.Bits()
	if p.Addr().Is4() {
		bits128 += 96
	}
	lo = u128From(p.Addr())
	return lo, lo.or(hostMask(bits128)), bits128
}

// rangePrefixes decomposes the inclusive range [a, b] (same family, a <= b) into
// the minimal list of CIDR prefixes covering exactly that range.
func rangePrefixes(a, b netip.Addr) []netip.Prefix {
	is4 := a.Is4()
	lo, hi := u128From(a), u128From(b)
	var out []netip.Prefix
	for {
		// Largest block that starts at lo (alignment) and does not pass hi.
		h := lo.trailingZeros()
		if is4 && h > 32 {
			h = 32
		}
		for h > 0 && hi.less(lo.or(hostMask(128-h))) {
			h--
		}
		pbits := 128 - h
		if is4 {
			pbits -= 96
		}
		out = append(out, netip.PrefixFrom(lo.addr(is4), pbits))
		end := lo.or(hostMask(128 - h))
		if end == hi {
			return out
		}
		lo, _ = end.addOne()
	}
}

func (u u128) leadingZeros() int {
	if u.hi != 0 {
		return bits.LeadingZeros64(u.hi)
	}
	return 64 + bits.LeadingZeros64(u.lo)
}

func (u u128) shr(n uint) u128 {
	switch {
	case n == 0:
		return u
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{0, u.hi >> (n - 64)}
	}
	return u128{u.hi >> n, u.lo>>n | u.hi<<(64-n)}
}

func (u u128) shl(n uint) u128 {
	switch {
	case n == 0:
		return u
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{u.lo << (n - 64), 0}
	}
	return u128{u.hi<<n | u.lo>>(64-n), u.lo << n}
}

// pkey is a prefix as a plain comparable value: hashing it is much cheaper than
// hashing a netip.Prefix, which matters with 50,000 prefixes.
type pkey struct {
	addr u128
	bits uint8
}

func keyOf(p netip.Prefix) pkey {
	lo, _, b := prefixBounds(p)
	return pkey{lo, uint8(b)}
}

package steering

import "net/netip"

// StubRange6Off turns the IPv6 stub range off: AAAA queries of private names
// get no answer.
const StubRange6Off = "off"

// checkStub6 checks client.stub_range6 and sets ck.stub6: the default ULA
// prefix beside an IPv4 stub_range when empty, none when "off" or when
// stub_range is itself IPv6.
func (ck *checked) checkStub6(cl *ClientConfig) {
	const path = "client.stub_range6"
	v4 := ck.stub.Addr().Is4()
	switch cl.StubRange6 {
	case StubRange6Off:
		return
	case "":
		if v4 {
			ck.stub6 = DefaultStubRange6
		}
		return
	}
	p, err := parseCIDR(cl.StubRange6)
	switch {
	case err != nil:
		ck.errorf(path, cl.StubRange6, "%v", err)
	case !p.Addr().Is6() || p.Addr().Is4In6():
		ck.errorf(path, cl.StubRange6, "must be an IPv6 prefix")
	case p.Addr().BitLen()-p.Bits() < 2 || p.Addr().BitLen()-p.Bits() > maxStubHostBits:
		ck.errorf(path, cl.StubRange6, "stub range must have between 2 and %d host bits", maxStubHostBits)
	case !v4:
		ck.errorf(path, cl.StubRange6, "client.stub_range %s is IPv6 already and serves AAAA; leave stub_range6 empty or %q", ck.stub, StubRange6Off)
	default:
		ck.stub6 = p
	}
}

// StubRange6 returns the prefix IPv6 stub addresses come from, or an
// invalid prefix when there are none (stub_range6 "off", or an IPv6
// stub_range).
func (s *Snapshot) StubRange6() netip.Prefix { return s.stub6 }

// IsStub reports whether a is in one of the stub ranges.
func (s *Snapshot) IsStub(a netip.Addr) bool {
	return s.stub.Contains(a) || s.stub6.Contains(a)
}

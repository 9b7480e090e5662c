package agent

import (
	"net/netip"
	"time"

	"github.com/ztagent/ztagent/steering"
)

// stubPools are the stub range's pool and, when the config has an IPv6 stub
// range and the OS took its address and route, the IPv6 one. A private name
// gets an address from each: its A answer from v4, its AAAA answer from v6.
// (v4 is the pool of client.stub_range, which may itself be IPv6; v6 is then
// nil.) v6 is set before the stack and the DNS proxy start and never changes
// afterwards.
type stubPools struct {
	v4, v6 *steering.StubPool
}

// pool returns the pool whose range holds a, or nil.
func (s *stubPools) pool(a netip.Addr) *steering.StubPool {
	switch {
	case s.v4.Prefix().Contains(a):
		return s.v4
	case s.v6 != nil && s.v6.Prefix().Contains(a):
		return s.v6
	}
	return nil
}

// Contains reports whether a is in the range of one of the pools.
func (s *stubPools) Contains(a netip.Addr) bool { return s.pool(a) != nil }

// Lookup returns the name a stub address of either pool stands for.
func (s *stubPools) Lookup(a netip.Addr) (string, bool) {
	if p := s.pool(a); p != nil {
		return p.Lookup(a)
	}
	return "", false
}

// Touch records that a flow used the stub address a at now.
func (s *stubPools) Touch(a netip.Addr, now time.Time) {
	if p := s.pool(a); p != nil {
		p.Touch(a, now)
	}
}

// Entries lists the assignments of both pools.
func (s *stubPools) Entries() []steering.StubEntry {
	out := s.v4.Entries()
	if s.v6 != nil {
		out = append(out, s.v6.Entries()...)
	}
	return out
}

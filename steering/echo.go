package steering

import "net/netip"

// An ICMP echo (ping) has no port. It is decided by host alone: it goes where
// the app that owns the destination would take the host's flows, whatever
// ports that app admits, so that `ping web.corp.test` reaches the publisher
// that serves the name. Exceptions come first as for flows; pinned-app
// exceptions do not apply (an echo's owner is not looked up).

const (
	reasonEchoExact = reasonNameExact + "; an echo has no port, so the app's ports do not matter"
	reasonEchoWild  = reasonNameWild + "; an echo has no port, so the app's ports do not matter"
	reasonEchoAddr  = "the address is in the app's address host (the longest matching prefix wins); an echo has no port, so the app's ports do not matter"
)

// MatchEcho decides an ICMP echo to addr (a stub or a real address) whose
// name, when the agent knows it, is fqdn: a name exception or an address
// exception sends it direct; otherwise the most specific app host that holds
// the name, then the address, decides, whatever the app's ports.
func (s *Snapshot) MatchEcho(addr netip.Addr, fqdn string) Decision {
	a := addr.Unmap()
	real := a.IsValid() && !s.IsStub(a)
	var fam int
	var key u128
	if real {
		fam, key = famKey(a)
	}
	var buf [maxName]byte
	var name []byte
	if n, ok := normName(&buf, fqdn); fqdn != "" && ok {
		name = buf[:n]
		if r, _ := s.exNames.lookup(name, s.rules, nil); r >= 0 {
			return Decision{Action: Direct, Rule: s.ruleText(r), Reason: reasonExDomain}
		}
	}
	if real {
		if d, ok := s.addrException(fam, key); ok {
			return d
		}
	}
	if name != nil {
		if r, wild := s.appNames.lookup(name, s.rules, nil); r >= 0 {
			reason := reasonEchoExact
			if wild {
				reason = reasonEchoWild
			}
			return s.appDecision(r, reason)
		}
	}
	if real {
		t := &s.appAddrs[fam]
		if n := t.lookup(key); n >= 0 {
			return s.appDecision(t.nodeRules(n)[0], reasonEchoAddr)
		}
		return Decision{Reason: reasonNoAddr}
	}
	switch {
	case name != nil:
		return Decision{Reason: reasonStubDead}
	case fqdn != "":
		return Decision{Reason: reasonInvalidName}
	}
	return Decision{Reason: reasonStubUnknown}
}

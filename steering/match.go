package steering

import "net/netip"

// Reasons are constants so that a lookup never allocates.
const (
	reasonInvalidName  = "not a valid DNS name, so no rule can match it"
	reasonExDomain     = "the name matches a domain exception (exceptions are decided before apps)"
	reasonExAddr       = "the address is in an address exception (exceptions are decided before apps)"
	reasonNoName       = "no exception or app host matches the name"
	reasonNoAddr       = "no exception or app host contains the address"
	reasonNamePorts    = "the name matches an app host, but no matching app admits this protocol and port"
	reasonAddrPorts    = "the address is in an app host, but no matching app admits this protocol and port"
	reasonNameExact    = "the name equals an app host exactly (an exact name beats every wildcard)"
	reasonNameWild     = "the name is below an app's wildcard domain (the longest matching wildcard wins)"
	reasonFlowExact    = reasonNameExact + ", and the app admits the protocol and port"
	reasonFlowWild     = reasonNameWild + ", and the app admits the protocol and port"
	reasonFlowAddr     = "the address is in the app's address host (the longest matching prefix wins), and the app admits the protocol and port"
	reasonPinnedBypass = "the flow's owner matches a pinned-app exception with action bypass, so the flow goes direct"
	reasonPinnedBlock  = "the flow's owner matches a pinned-app exception with action block"
	reasonPinnedFailed = "a pinned-app pattern timed out on the flow's owner (or the owner's name is not UTF-8) and was treated as not matching, so the flow is steered as its app says"
	reasonStubDead     = "the flow is to a stub address whose name no app matches any more"
	reasonStubUnknown  = "the flow is to a stub address that stands for no known name"
)

// MatchName decides a DNS name: domain exceptions first, then the apps' names
// (an exact name beats the longest wildcard; among rules for the same name the
// first app in the config wins). Case does not matter and a trailing dot is
// ignored. A steered answer means the name belongs to the tunnel (a stub address,
// or publisher-side resolution when the App says PublisherDNS).
func (s *Snapshot) MatchName(fqdn string) Decision {
	var buf [maxName]byte
	n, ok := normName(&buf, fqdn)
	if !ok {
		return Decision{Reason: reasonInvalidName}
	}
	name := buf[:n]
	if r, _ := s.exNames.lookup(name, s.rules, nil); r >= 0 {
		return Decision{Action: Direct, Rule: s.ruleText(r), Reason: reasonExDomain}
	}
	if r, wild := s.appNames.lookup(name, s.rules, nil); r >= 0 {
		reason := reasonNameExact
		if wild {
			reason = reasonNameWild
		}
		return s.appDecision(r, reason)
	}
	return Decision{Reason: reasonNoName}
}

func (s *Snapshot) appDecision(r int32, reason string) Decision {
	i := s.rules[r].app
	return Decision{Action: s.apps[i].action, App: s.appPtr(i), Rule: s.ruleText(r), Reason: reason}
}

// MatchFlow decides a flow: exceptions first (the flow's name, then its
// address), then app rules (by name when the flow has an FQDN, then by address
// when the address is a real one, not a stub). Within each, the most specific
// rule whose app admits the protocol and port decides. A steered flow is then
// checked against the pinned-app exceptions for its OS.
func (s *Snapshot) MatchFlow(f Flow) Decision {
	d := s.matchFlow(&f)
	if d.Steered() && len(s.pinned) > 0 {
		s.applyPinned(&f, &d)
	}
	return d
}

func (s *Snapshot) matchFlow(f *Flow) Decision {
	if f.FQDN != "" {
		return s.matchNamedFlow(f)
	}
	a := f.Addr.Unmap()
	switch {
	case !a.IsValid():
		return Decision{Reason: reasonNoAddr}
	case s.IsStub(a):
		return Decision{Reason: reasonStubUnknown}
	}
	fam, key := famKey(a)
	if d, ok := s.addrException(fam, key); ok {
		return d
	}
	d, _ := s.appByAddr(fam, key, f.Proto, f.Port)
	return d
}

func famKey(a netip.Addr) (int, u128) {
	if a.Is6() {
		return 1, u128From(a)
	}
	return 0, u128From(a)
}

func (s *Snapshot) addrException(fam int, key u128) (Decision, bool) {
	ex := &s.exAddrs[fam]
	if ex.empty() {
		return Decision{}, false
	}
	n := ex.lookup(key)
	if n < 0 {
		return Decision{}, false
	}
	return Decision{Action: Direct, Rule: s.ruleText(ex.nodeRules(n)[0]), Reason: reasonExAddr}, true
}

// matchNamedFlow decides a flow that carries a name; see MatchFlow.
func (s *Snapshot) matchNamedFlow(f *Flow) Decision {
	var buf [maxName]byte
	var name []byte
	if f.FQDN != "" {
		if n, ok := normName(&buf, f.FQDN); ok {
			name = buf[:n]
		}
	}
	a := f.Addr.Unmap()
	stub := a.IsValid() && s.IsStub(a)
	real := a.IsValid() && !stub
	var fam int
	var key u128
	if real {
		fam, key = famKey(a)
	}
	if name != nil {
		if r, _ := s.exNames.lookup(name, s.rules, nil); r >= 0 {
			return Decision{Action: Direct, Rule: s.ruleText(r), Reason: reasonExDomain}
		}
	}
	if real {
		if d, ok := s.addrException(fam, key); ok {
			return d
		}
	}
	miss := Decision{Reason: reasonInvalidName} // the explanation when nothing steers
	if name != nil {
		d, ok := s.appByName(name, f.Proto, f.Port)
		if ok {
			return d
		}
		miss = d
		if stub && miss.Rule == "" {
			miss.Reason = reasonStubDead
		}
	}
	if real {
		d, ok := s.appByAddr(fam, key, f.Proto, f.Port)
		if ok {
			return d
		}
		if miss.Rule == "" {
			miss = d
		}
	}
	return miss
}

// appByName finds the most specific name rule whose app admits proto/port.
// When none does, it returns the explanation and false.
func (s *Snapshot) appByName(name []byte, proto Protocol, port uint16) (Decision, bool) {
	r, wild := s.appNames.lookup(name, s.rules, func(r *rule) bool {
		return s.admits(r.app, proto, port)
	})
	if r >= 0 {
		reason := reasonFlowExact
		if wild {
			reason = reasonFlowWild
		}
		return s.appDecision(r, reason), true
	}
	// The most specific rule for the name, whatever its ports.
	if seen, _ := s.appNames.lookup(name, s.rules, nil); seen >= 0 {
		return Decision{Rule: s.ruleText(seen), Reason: reasonNamePorts}, false
	}
	return Decision{Reason: reasonNoName}, false
}

// appByAddr finds the longest prefix whose app admits proto/port, trying
// shorter prefixes in turn. When none does, it returns the explanation and false.
func (s *Snapshot) appByAddr(fam int, key u128, proto Protocol, port uint16) (Decision, bool) {
	t := &s.appAddrs[fam]
	n := t.lookup(key)
	if n < 0 {
		return Decision{Reason: reasonNoAddr}, false
	}
	for nd := n; nd >= 0; nd = t.parent[nd] {
		for _, r := range t.nodeRules(nd) {
			if s.admits(s.rules[r].app, proto, port) {
				return s.appDecision(r, reasonFlowAddr), true
			}
		}
	}
	return Decision{Rule: s.ruleText(t.nodeRules(n)[0]), Reason: reasonAddrPorts}, false
}

// applyPinned overrides a steered decision when the flow's owner matches a
// pinned-app exception for its OS (first match in config order wins).
func (s *Snapshot) applyPinned(f *Flow, d *Decision) {
	idx := s.pinnedOS[f.OS]
	if len(idx) == 0 || (f.Process == "" && f.Path == "" && f.AppID == "") {
		return
	}
	res := s.pinnedResult(f, idx)
	switch {
	case res.match >= 0:
		p := &s.pinned[res.match]
		d.Action, d.Rule = p.action, p.text
		d.Reason = reasonPinnedBypass
		if p.action == Block {
			d.Reason = reasonPinnedBlock
		}
	case res.timedOut >= 0:
		d.Reason = s.pinned[res.timedOut].failed
	}
}

// pinnedResult evaluates the pinned patterns for f's OS and identity, through the
// snapshot's cache.
func (s *Snapshot) pinnedResult(f *Flow, idx []int32) pinnedRes {
	k := pinnedKey{f.OS, f.Process, f.Path, f.AppID}
	if r, ok := s.cache.get(k); ok {
		return r
	}
	res := pinnedRes{match: -1, timedOut: -1}
	for _, i := range idx {
		p := &s.pinned[i]
		var subj string
		switch p.p.Field {
		case FieldProcess:
			subj = f.Process
		case FieldPath:
			subj = f.Path
		case FieldAppID:
			subj = f.AppID
		}
		if subj == "" {
			continue
		}
		ok, err := p.re.MatchString(subj)
		if err != nil {
			if res.timedOut < 0 {
				res.timedOut = i
			}
			continue
		}
		if ok {
			res.match = i
			break
		}
	}
	s.cache.put(k, res)
	return res
}

// routePrefixes returns the apps' prefixes minus the address exceptions, as
// minimal CIDRs, IPv4 first.
func routePrefixes(apps, ex *[2]addrTable) []netip.Prefix {
	var out []netip.Prefix
	for fam := range apps {
		out = append(out, subtractIntervals(apps[fam].covered(), ex[fam].covered(), fam == 0)...)
	}
	return out
}

// HasPinned reports whether any pinned-app exception applies on os, so that
// callers can skip looking up a flow's owner when none could matter.
func (s *Snapshot) HasPinned(os string) bool { return len(s.pinnedOS[os]) > 0 }

// MatchPinned decides f's owner identity against the pinned-app exceptions
// alone, whatever app f's destination belongs to: the first exception of
// f.OS whose pattern matches, as a Direct (bypass) or Block decision. The DNS
// proxy uses it to give a bypassed process real answers for private names.
func (s *Snapshot) MatchPinned(f Flow) (Decision, bool) {
	d := Decision{Action: L7}
	s.applyPinned(&f, &d)
	if d.Action == L7 {
		return Decision{Reason: d.Reason}, false
	}
	return d, true
}

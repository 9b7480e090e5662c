package ddns

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testKey    = "ztagent-ddns."
	testSecret = "dNtRwXD+n6KEQ8egiN9ytSBpETkvZc41RdcYLo2Qx8M="
	testZone   = "corp.test."
)

// testServer is a small RFC 2136 primary for one zone, over UDP and TCP,
// that verifies TSIG with the miekg server's own check and evaluates the
// prerequisites and updates the client sends.
type testServer struct {
	addr string

	mu        sync.Mutex
	rrs       map[string]map[uint16][]dns.RR // name → type → set
	refuse    int                            // answer every update with this rcode (0: none)
	truncate  bool                           // answer every UDP update with TC set and nothing done
	ignoreSig bool                           // apply updates whatever the TSIG check said
	unsigned  bool                           // answer without a TSIG
	nets      []string                       // the network of each update received
}

// startServer serves on 127.0.0.1 with secret for testKey, until the test
// ends.
func startServer(t *testing.T, secret string) *testServer {
	t.Helper()
	s := &testServer{rrs: map[string]map[uint16][]dns.RR{}}
	// UDP and TCP on the same port: the port the system gave UDP may be in
	// use for TCP by another test's connection, so a few ports are tried.
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	s.addr = pc.LocalAddr().String()
	secrets := map[string]string{testKey: secret}
	// The default accept function answers UPDATE with NOTIMP.
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: s, TsigSecret: secrets, MsgAcceptFunc: accept},
		{Listener: ln, Handler: s, TsigSecret: secrets, MsgAcceptFunc: accept},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	}
	return s
}

func (s *testServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	network := w.LocalAddr().Network()
	s.nets = append(s.nets, network)
	tsig := r.IsTsig()
	switch {
	case tsig == nil:
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	case w.TsigStatus() != nil && !s.ignoreSig:
		m.Rcode = dns.RcodeNotAuth
		m.SetTsig(tsig.Hdr.Name, tsig.Algorithm, 300, time.Now().Unix())
		m.Extra[len(m.Extra)-1].(*dns.TSIG).Error = dns.RcodeBadSig
		if errors.Is(w.TsigStatus(), dns.ErrSecret) {
			m.Extra[len(m.Extra)-1].(*dns.TSIG).Error = dns.RcodeBadKey
		}
		_ = w.WriteMsg(m)
		return
	case s.truncate && network == "udp":
		m.Truncated = true
	case s.refuse != 0:
		m.Rcode = s.refuse
	case r.Opcode != dns.OpcodeUpdate || len(r.Question) != 1 || r.Question[0].Name != testZone:
		m.Rcode = dns.RcodeNotZone
	default:
		m.Rcode = s.updateLocked(r)
	}
	if !s.unsigned {
		m.SetTsig(tsig.Hdr.Name, tsig.Algorithm, 300, time.Now().Unix())
	}
	_ = w.WriteMsg(m)
}

// updateLocked checks the prerequisites (RFC 2136 §3.2) and applies the
// updates (§3.4) of r.
func (s *testServer) updateLocked(r *dns.Msg) int {
	want := map[string][]dns.RR{} // value-dependent prerequisites by name/type
	for _, p := range r.Answer {
		h := p.Header()
		name := strings.ToLower(h.Name)
		switch {
		case h.Class == dns.ClassNONE && h.Rrtype == dns.TypeANY:
			if len(s.rrs[name]) > 0 {
				return dns.RcodeYXDomain
			}
		case h.Class == dns.ClassINET:
			k := name + "/" + dns.TypeToString[h.Rrtype]
			want[k] = append(want[k], p)
		default:
			return dns.RcodeFormatError // not used by the client
		}
	}
	for k, set := range want {
		name, typ, _ := strings.Cut(k, "/")
		if !sameSet(s.rrs[name][dns.StringToType[typ]], set) {
			return dns.RcodeNXRrset
		}
	}
	for _, u := range r.Ns {
		h := u.Header()
		name := strings.ToLower(h.Name)
		switch h.Class {
		case dns.ClassINET:
			s.addLocked(u)
		case dns.ClassANY:
			delete(s.rrs[name], h.Rrtype)
		default:
			return dns.RcodeFormatError
		}
	}
	return dns.RcodeSuccess
}

func (s *testServer) addLocked(rr dns.RR) {
	name := strings.ToLower(rr.Header().Name)
	if s.rrs[name] == nil {
		s.rrs[name] = map[uint16][]dns.RR{}
	}
	set := s.rrs[name][rr.Header().Rrtype]
	for i, old := range set {
		if dns.IsDuplicate(old, rr) {
			set[i] = rr
			return
		}
	}
	s.rrs[name][rr.Header().Rrtype] = append(set, rr)
}

func sameSet(have, want []dns.RR) bool {
	if len(have) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || dns.IsDuplicate(h, w)
		}
		if !found {
			return false
		}
	}
	return true
}

// records returns the name's records of one type as their text without TTL.
func (s *testServer) records(name string, typ uint16) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, rr := range s.rrs[name][typ] {
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(f[3:], " "))
	}
	return out
}

func (s *testServer) set(f func(s *testServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *testServer) networks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.nets...)
}

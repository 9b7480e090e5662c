package dnsproxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// authServer is an authoritative server for the zone "test." written to
// exercise forwarding: many record types, DNSSEC-shaped records (RRSIG,
// DNSKEY, DS, NSEC) returned with the DO bit, answers too large for UDP
// (truncated above 1232 bytes whatever the client's buffer, so that large
// buffers also need TCP), every rcode ("rcode-N.test."), and EDNS handled as a
// real server would: version other than 0 answered BADVERS, client subnet
// echoed with its scope and changing the answer, cookies answered with a
// server cookie, NSID given when asked, unknown options echoed. Its answers
// depend only on the query, so that its answer to the agent's query and to
// the same query sent directly can be compared byte for byte.
type authServer struct {
	addr netip.AddrPort
	mu   sync.Mutex
	raw  [][]byte // queries as received
}

// authUDPLimit is the largest UDP answer the server sends.
const authUDPLimit = 1232

func startAuthServer(t *testing.T) *authServer {
	t.Helper()
	pc, ln, err := bindPair(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	a := &authServer{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		if err := w.WriteMsg(a.answer(t, req, w.LocalAddr().Network())); err != nil {
			t.Errorf("test server: %v", err)
		}
	})
	decorate := func(r dns.Reader) dns.Reader { return &rawReader{Reader: r, a: a} }
	serveTest(t, decorate, &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: ln, Handler: h})
	return a
}

// rawReader keeps the raw queries the server reads.
type rawReader struct {
	dns.Reader
	a *authServer
}

func (r *rawReader) ReadTCP(c net.Conn, timeout time.Duration) ([]byte, error) {
	b, err := r.Reader.ReadTCP(c, timeout)
	r.a.record(b)
	return b, err
}

func (r *rawReader) ReadUDP(c *net.UDPConn, timeout time.Duration) ([]byte, *dns.SessionUDP, error) {
	b, s, err := r.Reader.ReadUDP(c, timeout)
	r.a.record(b)
	return b, s, err
}

func (a *authServer) record(b []byte) {
	if b == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.raw = append(a.raw, append([]byte(nil), b...))
}

func (a *authServer) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.raw)
}

// since returns the queries received after the first n.
func (a *authServer) since(n int) [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.raw[n:])
}

// answer builds the server's answer to req over network ("udp" or "tcp").
func (a *authServer) answer(t *testing.T, req *dns.Msg, network string) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.Compress = true
	opt := req.IsEdns0()
	var ropt *dns.OPT
	if opt != nil {
		ropt = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		ropt.SetUDPSize(authUDPLimit)
		ropt.SetDo(opt.Do())
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			resp.Extra = append(resp.Extra, ropt)
			return resp
		}
		ropt.Option = echoOptions(opt)
	}
	do := opt != nil && opt.Do()
	resp.AuthenticatedData = do && !req.CheckingDisabled
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if rc, ok := strings.CutPrefix(name, "rcode-"); ok {
		n, _ := strconv.Atoi(strings.TrimSuffix(rc, ".test."))
		resp.Rcode = n
		if n == dns.RcodeFormatError {
			resp.Question = nil // allowed for FORMERR
		}
		if n == dns.RcodeServerFailure && ropt != nil {
			ropt.Option = append(ropt.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNetworkError, ExtraText: "test"})
		}
	} else {
		a.fill(t, resp, q, name, do, subnetOf(opt))
	}
	if ropt != nil {
		resp.Extra = append(resp.Extra, ropt)
	}
	limit := dns.MaxMsgSize
	if network == "udp" {
		limit = dns.MinMsgSize
		if opt != nil {
			limit = max(dns.MinMsgSize, min(int(opt.UDPSize()), authUDPLimit))
		}
	}
	if resp.Len() > limit {
		resp.Truncated = true
		resp.Answer, resp.Ns = nil, nil
		resp.Extra = resp.Extra[len(resp.Extra)-btoi(ropt != nil):]
	}
	return resp
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// echoOptions is the server's OPT options for a query's: client subnet
// echoed with a scope, a server cookie after the client's, NSID when asked,
// unknown options echoed; padding dropped.
func echoOptions(opt *dns.OPT) []dns.EDNS0 {
	var out []dns.EDNS0
	for _, o := range opt.Option {
		switch o := o.(type) {
		case *dns.EDNS0_SUBNET:
			e := *o
			e.SourceScope = o.SourceNetmask
			out = append(out, &e)
		case *dns.EDNS0_COOKIE:
			sum := sha256.Sum256([]byte(o.Cookie[:16]))
			out = append(out, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: o.Cookie[:16] + hex.EncodeToString(sum[:8])})
		case *dns.EDNS0_NSID:
			out = append(out, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: hex.EncodeToString([]byte("auth-1"))})
		case *dns.EDNS0_LOCAL:
			out = append(out, o)
		}
	}
	return out
}

// subnetOf is the client subnet's address, or nil.
func subnetOf(opt *dns.OPT) net.IP {
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return e.Address
		}
	}
	return nil
}

// authZone is the zone's data: owner → records in presentation form.
var authZone = map[string][]string{
	"a.test.": {
		"a.test. 300 IN A 192.0.2.1", "a.test. 300 IN A 192.0.2.2",
		"a.test. 300 IN AAAA 2001:db8::1",
		"a.test. 300 IN MX 10 mail.a.test.",
		`a.test. 300 IN TXT "v=spf1 -all" "second string"`,
		"a.test. 300 IN CAA 0 issue \"ca.example\"",
		"a.test. 300 IN HTTPS 1 . alpn=h2,h3 ipv4hint=192.0.2.1",
		"a.test. 300 IN SSHFP 4 2 123456789abcdef67890123456789abcdef67890123456789abcdef123456789",
		"a.test. 300 IN NSEC b.test. A MX TXT AAAA RRSIG NSEC HTTPS CAA",
	},
	"_sip._udp.test.": {"_sip._udp.test. 300 IN SRV 10 60 5060 a.test."},
	"cname.test.":     {"cname.test. 300 IN CNAME a.test."},
	"test.": {
		"test. 300 IN SOA ns.test. hostmaster.test. 2026010101 7200 3600 1209600 60",
		"test. 300 IN NS ns.test.",
		"test. 300 IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==",
		"test. 300 IN DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	},
	"ns.test.":                {"ns.test. 300 IN A 192.0.2.53"},
	"1.2.0.192.in-addr.arpa.": {"1.2.0.192.in-addr.arpa. 300 IN PTR a.test."},
}

// fill answers a question from authZone: the records of the type (CNAME
// chased), NODATA or NXDOMAIN with the SOA, with RRSIGs and NSEC for DO;
// "big.test." has more TXT records than fit a UDP answer; with a client
// subnet, "a.test." A comes from the subnet.
func (a *authServer) fill(t *testing.T, resp *dns.Msg, q dns.Question, name string, do bool, subnet net.IP) {
	if name == "big.test." {
		for i := range 30 {
			resp.Answer = append(resp.Answer, mustRR(t, fmt.Sprintf(`big.test. 300 IN TXT "%03d %s"`, i, strings.Repeat("x", 90))))
		}
		return
	}
	if name == "a.test." && q.Qtype == dns.TypeA && subnet != nil {
		resp.Answer = append(resp.Answer, mustRR(t, fmt.Sprintf("a.test. 300 IN A 198.18.%d.%d", subnet[0], subnet[2])))
		return
	}
	for owner := name; ; {
		rrs, ok := authZone[owner]
		if !ok {
			if owner == name {
				resp.Rcode = dns.RcodeNameError
			}
			break
		}
		next := ""
		for _, s := range rrs {
			rr := mustRR(t, s)
			if owner == name {
				rr.Header().Name = q.Name // the query's case, as servers echo it
			}
			switch {
			case rr.Header().Rrtype == q.Qtype, q.Qtype == dns.TypeANY:
				resp.Answer = append(resp.Answer, rr)
			case rr.Header().Rrtype == dns.TypeCNAME:
				resp.Answer = append(resp.Answer, rr)
				next = rr.(*dns.CNAME).Target
			}
		}
		if next == "" {
			break
		}
		owner = next
	}
	if len(resp.Answer) == 0 {
		resp.Ns = append(resp.Ns, mustRR(t, authZone["test."][0]))
		if do {
			resp.Ns = append(resp.Ns, mustRR(t, "a.test. 60 IN NSEC b.test. A AAAA"))
		}
	}
	if do {
		sign(t, resp)
	}
}

// sign adds an RRSIG-shaped record after each RRset of the answer and
// authority sections.
func sign(t *testing.T, resp *dns.Msg) {
	signed := func(rrs []dns.RR) []dns.RR {
		var out []dns.RR
		for i, rr := range rrs {
			out = append(out, rr)
			h := rr.Header()
			if i+1 < len(rrs) && rrs[i+1].Header().Rrtype == h.Rrtype && rrs[i+1].Header().Name == h.Name {
				continue
			}
			out = append(out, mustRR(t, fmt.Sprintf("%s %d IN RRSIG %s 13 %d %d 20261201000000 20261101000000 12345 test. c2lnbmF0dXJl",
				h.Name, h.Ttl, dns.TypeToString[h.Rrtype], dns.CountLabel(h.Name), h.Ttl)))
		}
		return out
	}
	resp.Answer = signed(resp.Answer)
	resp.Ns = signed(resp.Ns)
}

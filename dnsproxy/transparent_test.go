package dnsproxy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// transparencyCase is one query of TestForwardingIsTransparent.
type transparencyCase struct {
	name    string
	network string
	msg     *dns.Msg
	cached  bool // the second asking is answered from the cache
	// warm is true when an earlier case's query differs only in the ID, the
	// name's case or the transport: the first asking is then a hit too.
	warm bool
}

func transparencyCases() []transparencyCase {
	q := func(name string, qtype uint16, mods ...func(*dns.Msg)) *dns.Msg {
		m := newQuery(name, qtype)
		m.Id = 0xBEEF
		for _, f := range mods {
			f(m)
		}
		return m
	}
	edns := func(size uint16, do bool, opts ...dns.EDNS0) func(*dns.Msg) {
		return func(m *dns.Msg) { m.SetEdns0(size, do); m.IsEdns0().Option = opts }
	}
	cd := func(m *dns.Msg) { m.CheckingDisabled = true }
	ad := func(m *dns.Msg) { m.AuthenticatedData = true }
	version := func(v uint8) func(*dns.Msg) { return func(m *dns.Msg) { m.IsEdns0().SetVersion(v) } }
	subnet := func(a string) dns.EDNS0 {
		return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP(a).To4()}
	}
	cookie := func(c string) dns.EDNS0 { return &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: c} }
	nsid := &dns.EDNS0_NSID{Code: dns.EDNS0NSID}
	unknown := &dns.EDNS0_LOCAL{Code: 65001, Data: []byte("agent does not know this")}
	padding := &dns.EDNS0_PADDING{Padding: make([]byte, 37)}
	// A client subnet option with an unknown address family: miekg/dns
	// cannot parse it (the test server answers FORMERR); the agent must
	// not need to.
	badSubnet := &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 9, 24, 0, 198, 51, 100}}

	cases := []transparencyCase{
		{"A", "udp", q("a.test.", dns.TypeA), true, false},
		{"A mixed case", "udp", q("A.Test.", dns.TypeA), true, true},
		{"AAAA", "udp", q("a.test.", dns.TypeAAAA), true, false},
		{"MX", "udp", q("a.test.", dns.TypeMX), true, false},
		{"TXT", "udp", q("a.test.", dns.TypeTXT), true, false},
		{"CAA", "udp", q("a.test.", dns.TypeCAA), true, false},
		{"HTTPS", "udp", q("a.test.", dns.TypeHTTPS), true, false},
		{"SSHFP", "udp", q("a.test.", dns.TypeSSHFP), true, false},
		{"NSEC", "udp", q("a.test.", dns.TypeNSEC), true, false},
		{"SRV", "udp", q("_sip._udp.test.", dns.TypeSRV), true, false},
		{"NS", "udp", q("test.", dns.TypeNS), true, false},
		{"SOA", "udp", q("test.", dns.TypeSOA), true, false},
		{"ANY", "udp", q("a.test.", dns.TypeANY), true, false},
		{"CNAME chain", "udp", q("cname.test.", dns.TypeA), true, false},
		{"PTR", "udp", q("1.2.0.192.in-addr.arpa.", dns.TypePTR), true, false},
		{"DNSKEY with DO", "udp", q("test.", dns.TypeDNSKEY, edns(1232, true)), true, false},
		{"DS with DO", "udp", q("test.", dns.TypeDS, edns(1232, true)), true, false},
		{"A with DO: RRSIGs", "udp", q("a.test.", dns.TypeA, edns(1232, true)), true, false},
		{"A with DO and CD", "udp", q("a.test.", dns.TypeA, edns(1232, true), cd), true, false},
		{"A with AD", "udp", q("a.test.", dns.TypeA, edns(1232, false), ad), true, false},
		{"A with EDNS, no DO", "udp", q("a.test.", dns.TypeA, edns(1232, false)), true, false},
		{"NXDOMAIN", "udp", q("nx.test.", dns.TypeA), true, false},
		{"NXDOMAIN with DO: NSEC", "udp", q("nx.test.", dns.TypeA, edns(1232, true)), true, false},
		{"NODATA", "udp", q("a.test.", dns.TypeLOC), true, false},
		{"truncated, no EDNS: TC passed on", "udp", q("big.test.", dns.TypeTXT), true, false},
		{"truncated, 1232: TC passed on", "udp", q("big.test.", dns.TypeTXT, edns(1232, false)), true, false},
		{"truncated, 4096: full over TCP", "udp", q("big.test.", dns.TypeTXT, edns(4096, false)), true, false},
		{"large over TCP", "tcp", q("big.test.", dns.TypeTXT), true, true},
		{"client subnet one", "udp", q("a.test.", dns.TypeA, edns(1232, false, subnet("198.51.100.0"))), true, false},
		{"client subnet two", "udp", q("a.test.", dns.TypeA, edns(1232, false, subnet("203.0.113.0"))), true, false},
		{"cookie", "udp", q("a.test.", dns.TypeA, edns(1232, false, cookie("0102030405060708"))), true, false},
		{"cookie of another client", "udp", q("a.test.", dns.TypeA, edns(1232, false, cookie("1112131415161718"))), true, false},
		{"NSID", "udp", q("a.test.", dns.TypeA, edns(1232, false, nsid)), true, false},
		{"unknown option", "udp", q("a.test.", dns.TypeA, edns(1232, false, unknown)), true, false},
		{"padding", "udp", q("a.test.", dns.TypeA, edns(1232, false, padding)), true, false},
		{"every option", "udp", q("a.test.", dns.TypeA, edns(4096, true, subnet("192.0.2.0"), cookie("2122232425262728"), nsid, unknown, padding)), true, false},
		{"option miekg/dns cannot parse", "udp", q("a.test.", dns.TypeA, edns(1232, false, badSubnet)), false, false},
		{"option miekg/dns cannot parse, over TCP", "tcp", q("a.test.", dns.TypeA, edns(1232, false, badSubnet)), false, false},
		{"EDNS version 1: BADVERS", "udp", q("a.test.", dns.TypeA, edns(1232, false), version(1)), false, false},
		{"EDNS version 1 over TCP", "tcp", q("a.test.", dns.TypeA, edns(1232, false), version(1)), false, false},
		{"options over TCP", "tcp", q("a.test.", dns.TypeA, edns(1232, true, subnet("198.51.100.0"), nsid, unknown)), true, false},
		{"NXDOMAIN over TCP", "tcp", q("nx.test.", dns.TypeA, edns(1232, true)), true, true},
		{"NODATA over TCP", "tcp", q("a.test.", dns.TypeLOC, edns(1232, false)), true, false},
	}
	for rc := range 24 {
		name := fmt.Sprintf("rcode-%d.test.", rc)
		cases = append(cases, transparencyCase{"rcode " + dns.RcodeToString[rc] + " with EDNS", "udp", q(name, dns.TypeA, edns(1232, false)), false, false})
		if rc < 16 {
			cases = append(cases, transparencyCase{"rcode " + dns.RcodeToString[rc], "udp", q(name, dns.TypeA), false, false})
		}
	}
	return cases
}

// TestForwardingIsTransparent asks an authoritative server, through the
// proxy and directly, the same queries: many record types, DNSSEC records,
// truncation, every rcode, EDNS options and versions. The upstream must get
// the client's query byte for byte but for the ID, and the client the
// upstream's own answer byte for byte but for the ID and TTLs, on a cache miss
// and again on a hit. Where the upstream's UDP answer is truncated, its own
// answer is the one over TCP if it fits the client's buffer.
func TestForwardingIsTransparent(t *testing.T) {
	auth := startAuthServer(t)
	s, addr := startProxy(t, Config{Upstreams: []netip.AddrPort{auth.addr}, Policy: fuzzPolicy()})
	for _, tc := range transparencyCases() {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := tc.msg.Pack()
			if err != nil {
				t.Fatal(err)
			}
			want := upstreamOwnAnswer(t, auth, tc.network, wire)
			before := auth.count()
			miss := rawQuery(t, tc.network, addr, wire)
			if d := diffModuloTTL(miss, want); d != "" {
				t.Fatalf("miss: %s", d)
			}
			sent := auth.count() - before
			if (sent == 0) != tc.warm {
				t.Fatalf("upstream asked %d times on the first asking; warm cache %v", sent, tc.warm)
			}
			for _, got := range auth.since(before) {
				if !bytes.Equal(got[2:], wire[2:]) {
					t.Fatalf("upstream got query\n%x\nclient sent\n%x", got, wire)
				}
			}
			hits := s.Stats().CacheHits
			hit := rawQuery(t, tc.network, addr, wire)
			if d := diffModuloTTL(hit, want); d != "" {
				t.Fatalf("second asking: %s", d)
			}
			fromCache := s.Stats().CacheHits == hits+1 && auth.count() == before+sent
			if fromCache != tc.cached {
				t.Errorf("second asking from the cache: %v, want %v", fromCache, tc.cached)
			}
		})
	}
}

// upstreamOwnAnswer is what the upstream answers the client's query: over
// UDP, its UDP answer unless it is truncated and its TCP answer fits the
// client's buffer.
func upstreamOwnAnswer(t *testing.T, auth *authServer, network string, wire []byte) []byte {
	direct := rawQuery(t, network, auth.addr.String(), wire)
	if network == "tcp" || direct[2]&0x02 == 0 {
		return direct
	}
	full := rawQuery(t, "tcp", auth.addr.String(), wire)
	q, _ := parseQuery(wire)
	if len(full) <= maxSize(q.udpSize, false) {
		return full
	}
	return direct
}

// rawQuery sends wire to addr over network and returns the answer's bytes.
func rawQuery(t *testing.T, network, addr string, wire []byte) []byte {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if network == "udp" {
		if _, err := c.Write(wire); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, dns.MaxMsgSize)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(wire)))
	if _, err := c.Write(append(msg, wire...)); err != nil {
		t.Fatal(err)
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	return buf
}

// diffModuloTTL describes how got differs from want, both DNS messages,
// outside the records' TTLs; "" if it does not. The IDs must be equal too:
// both answer queries with the same ID.
func diffModuloTTL(got, want []byte) string {
	show := func(b []byte) string {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			return fmt.Sprintf("%x (%v)", b, err)
		}
		return m.String()
	}
	gi, gok := walkResponse(got)
	wi, wok := walkResponse(want)
	switch {
	case !gok || !wok:
		return fmt.Sprintf("not a DNS message:\n got %x\nwant %x", got, want)
	case len(got) != len(want) || !slices.Equal(gi.ttlOffs, wi.ttlOffs):
		return fmt.Sprintf("%d bytes, want %d:\n got:\n%s\nwant:\n%s", len(got), len(want), show(got), show(want))
	case !bytes.Equal(got[:2], want[:2]):
		return fmt.Sprintf("ID %x, want %x", got[:2], want[:2])
	}
	g, w := bytes.Clone(got), bytes.Clone(want)
	for _, off := range gi.ttlOffs {
		copy(g[off:off+4], []byte{0, 0, 0, 0})
		copy(w[off:off+4], []byte{0, 0, 0, 0})
	}
	for i := range g {
		if g[i] != w[i] {
			return fmt.Sprintf("byte %d is %#x, want %#x:\n got:\n%s\nwant:\n%s", i, g[i], w[i], show(got), show(want))
		}
	}
	return ""
}

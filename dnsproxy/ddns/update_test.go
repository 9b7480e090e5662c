package ddns

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const name = "laptop1.corp.test."

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRegisterReplaceRemove(t *testing.T) {
	s := startServer(t, testSecret)
	c := newTestClient(t, testConfig(s.addr))
	ctx := ctxT(t)

	if err := c.Register(ctx, addrs("100.96.0.5", "fd00::5")); err != nil {
		t.Fatal(err)
	}
	if a, aaaa := s.records(name, dns.TypeA), s.records(name, dns.TypeAAAA); !slices.Equal(a, []string{"A 100.96.0.5"}) ||
		!slices.Equal(aaaa, []string{"AAAA fd00::5"}) {
		t.Fatalf("after register: A %v, AAAA %v", a, aaaa)
	}
	if txt := s.records(name, dns.TypeTXT); !slices.Equal(txt, []string{`TXT "ztagent-owner=device-1"`}) {
		t.Fatalf("owner record %v", txt)
	}

	// A refresh and a new address replace the set, not add to it.
	if err := c.Register(ctx, addrs("100.96.0.6")); err != nil {
		t.Fatal(err)
	}
	if a, aaaa := s.records(name, dns.TypeA), s.records(name, dns.TypeAAAA); !slices.Equal(a, []string{"A 100.96.0.6"}) || len(aaaa) != 0 {
		t.Fatalf("after re-register: A %v, AAAA %v", a, aaaa)
	}

	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT} {
		if r := s.records(name, typ); len(r) != 0 {
			t.Fatalf("after remove: %s %v", dns.TypeToString[typ], r)
		}
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatalf("removing an absent name: %v", err)
	}
}

func TestNameOwnedByAnother(t *testing.T) {
	s := startServer(t, testSecret)
	ctx := ctxT(t)
	first := newTestClient(t, testConfig(s.addr))
	if err := first.Register(ctx, addrs("100.96.0.5")); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(s.addr)
	cfg.Owner = "device-2"
	second := newTestClient(t, cfg)

	err := second.Register(ctx, addrs("100.96.0.9"))
	var rc *RcodeError
	if !errors.Is(err, ErrNameTaken) || !errors.As(err, &rc) || rc.Rcode != dns.RcodeNXRrset {
		t.Fatalf("second device's register: %v; want ErrNameTaken with NXRRSET", err)
	}
	if err := second.Remove(ctx); err != nil {
		t.Fatalf("second device's remove: %v", err)
	}
	if a := s.records(name, dns.TypeA); !slices.Equal(a, []string{"A 100.96.0.5"}) {
		t.Fatalf("first device's record after the second's attempts: %v", a)
	}

	// A static record (no owner) is not taken over either.
	s.set(func(s *testServer) { s.addLocked(mustRR(t, "static.corp.test. 60 IN A 10.20.0.50")) })
	cfg = testConfig(s.addr)
	cfg.Name = "static.corp.test"
	if err := newTestClient(t, cfg).Register(ctx, addrs("100.96.0.5")); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("register over a static record: %v; want ErrNameTaken", err)
	}
}

func mustRR(t *testing.T, s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		secret    string // the server's
		keyName   string // the client's
		refuse    int
		rcode     int
		tsigError uint16
		text      string
	}{
		{"REFUSED", testSecret, testKey, dns.RcodeRefused, dns.RcodeRefused, 0, "server answered REFUSED"},
		{"NOTAUTH", testSecret, testKey, dns.RcodeNotAuth, dns.RcodeNotAuth, 0, "server answered NOTAUTH"},
		{"wrong secret", "c2VjcmV0LW9mLWFub3RoZXI=", testKey, 0, dns.RcodeNotAuth, dns.RcodeBadSig, "server answered NOTAUTH (TSIG BADSIG)"},
		{"unknown key", testSecret, "other-key.", 0, dns.RcodeNotAuth, dns.RcodeBadKey, "server answered NOTAUTH (TSIG BADKEY)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.secret)
			s.set(func(s *testServer) { s.refuse = tc.refuse })
			cfg := testConfig(s.addr)
			cfg.KeyName = tc.keyName
			err := newTestClient(t, cfg).Register(ctxT(t), addrs("100.96.0.5"))
			var rc *RcodeError
			if !errors.As(err, &rc) || rc.Rcode != tc.rcode || rc.TSIGError != tc.tsigError || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("register: %v; want rcode %s, TSIG error %d, %q", err, dns.RcodeToString[tc.rcode], tc.tsigError, tc.text)
			}
			if a := s.records(name, dns.TypeA); len(a) != 0 {
				t.Fatalf("records after a refusal: %v", a)
			}
		})
	}
}

func TestSuccessMustBeSigned(t *testing.T) {
	t.Run("unsigned", func(t *testing.T) {
		s := startServer(t, testSecret)
		s.set(func(s *testServer) { s.unsigned = true })
		err := newTestClient(t, testConfig(s.addr)).Register(ctxT(t), addrs("100.96.0.5"))
		if !errors.Is(err, ErrUnsigned) {
			t.Fatalf("register with an unsigned NOERROR: %v; want ErrUnsigned", err)
		}
	})
	t.Run("signed with another key", func(t *testing.T) {
		s := startServer(t, "c2VjcmV0LW9mLWFub3RoZXI=")
		s.set(func(s *testServer) { s.ignoreSig = true })
		err := newTestClient(t, testConfig(s.addr)).Register(ctxT(t), addrs("100.96.0.5"))
		if !errors.Is(err, dns.ErrSig) {
			t.Fatalf("register with a NOERROR signed by another key: %v; want dns.ErrSig", err)
		}
	})
}

func TestTruncatedRetriedOverTCP(t *testing.T) {
	s := startServer(t, testSecret)
	s.set(func(s *testServer) { s.truncate = true })
	if err := newTestClient(t, testConfig(s.addr)).Register(ctxT(t), addrs("100.96.0.5")); err != nil {
		t.Fatal(err)
	}
	if a := s.records(name, dns.TypeA); !slices.Equal(a, []string{"A 100.96.0.5"}) {
		t.Fatalf("A %v", a)
	}
	if n := s.networks(); !slices.Equal(n, []string{"udp", "tcp"}) {
		t.Fatalf("updates went over %v, want udp then tcp", n)
	}
}

func TestBadAddresses(t *testing.T) {
	c := newTestClient(t, testConfig("127.0.0.1:9"))
	for _, a := range [][]netip.Addr{nil, {{}}, addrs("fe80::1%eth0")} {
		if err := c.Register(context.Background(), a); err == nil {
			t.Errorf("Register(%v): no error", a)
		}
		if err := c.Run(context.Background(), a); err == nil {
			t.Errorf("Run(%v): no error", a)
		}
	}
}

func TestUnreachableServer(t *testing.T) {
	c := newTestClient(t, testConfig("127.0.0.1:9"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := c.Register(ctx, addrs("100.96.0.5"))
	var rc *RcodeError
	if err == nil || errors.As(err, &rc) {
		t.Fatalf("register to nothing: %v; want a transport error", err)
	}
}

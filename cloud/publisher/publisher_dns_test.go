package publisher

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/ztagent/ztagent/tunnel/l7"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSystemDNSServer(t *testing.T) {
	tests := []struct {
		name, conf, want string
	}{
		{"first of several", "search corp.test\nnameserver 10.0.0.53\nnameserver 10.0.0.54\n", "10.0.0.53:53"},
		{"IPv6", "nameserver fd00::53\n", "[fd00::53]:53"},
		{"none", "search corp.test\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := systemDNSServer(path)
			if got != tt.want || (err == nil) != (tt.want != "") {
				t.Fatalf("systemDNSServer = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := systemDNSServer(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("systemDNSServer of a missing file succeeded")
	}
}

// TestAnswers: the publisher takes only an answer to its own query.
func TestAnswers(t *testing.T) {
	qm := new(dns.Msg)
	qm.SetQuestion("wiki.corp.test.", dns.TypeA)
	qm.Id = 0x1234
	q, err := qm.Pack()
	if err != nil {
		t.Fatal(err)
	}
	answer := func(edit func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("wiki.corp.test.", dns.TypeA)
		m.Id, m.Response = 0x1234, true
		edit(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		msg  []byte
		want bool
	}{
		{"answer", answer(func(*dns.Msg) {}), true},
		{"other case", answer(func(m *dns.Msg) { m.Question[0].Name = "WIKI.corp.TEST." }), true},
		{"no question", answer(func(m *dns.Msg) { m.Question = nil; m.Rcode = dns.RcodeFormatError }), true},
		{"other ID", answer(func(m *dns.Msg) { m.Id = 0x4321 }), false},
		{"not a response", answer(func(m *dns.Msg) { m.Response = false }), false},
		{"other name", answer(func(m *dns.Msg) { m.Question[0].Name = "wika.corp.test." }), false},
		{"other type", answer(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }), false},
		{"short", []byte{0x12, 0x34, 0x80}, false},
		{"cut in the question", answer(func(*dns.Msg) {})[:20], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := answers(tt.msg, q); got != tt.want {
				t.Fatalf("answers = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzAnswers: whatever a resolver sends back, matching it does not panic.
func FuzzAnswers(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("wiki.corp.example.", dns.TypeA)
	b, _ := q.Pack()
	f.Add(b, b)
	f.Fuzz(func(t *testing.T, msg, query []byte) {
		if len(query) < l7.DNSHeaderLen {
			return // exchangeDNS only sees queries parseDNSQuery accepted
		}
		answers(msg, query)
	})
}

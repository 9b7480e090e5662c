package dnsproxy

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUDPBursts sends bursts of queries, more than one batch, from several
// clients at once, mixing fast-path answers (stubs, cache hits) with queries
// the general path answers (PTR) so that both kinds share batches, on IPv4
// and IPv6: every query must get its own answer, at the socket that sent it.
func TestUDPBursts(t *testing.T) {
	up := startUpstream(t, answerA)
	for _, listen := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(listen, func(t *testing.T) {
			if listen[0] == '[' && !hasIPv6Loopback() {
				t.Skip("no IPv6 loopback")
			}
			_, addr := startProxy(t, Config{Listen: []string{listen}, Policy: fuzzPolicy(), Upstreams: []netip.AddrPort{up.addr}})
			query(t, "udp", addr, newQuery("www.example.com.", dns.TypeA)) // cached from now on
			cases := []struct {
				name  string
				qtype uint16
				want  string
			}{
				{"wiki.corp.example.", dns.TypeA, "100.64.0.1"},
				{"x_y-1.corp.example.", dns.TypeA, "100.64.0.2"},
				{"www.example.com.", dns.TypeA, "192.0.2.1"},
				{mustReverse(t, "100.64.0.1"), dns.TypePTR, "wiki.corp.example."},
			}
			const clients, burst = 4, 3 * udpBatch
			var wg sync.WaitGroup
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := udpBurst(addr, burst, func(i int) (*dns.Msg, string) {
						k := cases[(c+i)%len(cases)]
						m := newQuery(k.name, k.qtype)
						m.Id = uint16(c<<8 | i)
						return m, k.want
					}); err != nil {
						t.Errorf("client %d: %v", c, err)
					}
				}()
			}
			wg.Wait()
		})
	}
}

// udpBurst sends n queries made by q without waiting, then reads the n
// answers and checks each against its query's expected answer.
func udpBurst(addr string, n int, q func(i int) (*dns.Msg, string)) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	want := make(map[uint16]string, n)
	for i := range n {
		m, w := q(i)
		want[m.Id] = w
		b, err := m.Pack()
		if err != nil {
			return err
		}
		if _, err := c.Write(b); err != nil {
			return err
		}
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for range n {
		k, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("%d answers missing: %w", len(want), err)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(buf[:k]); err != nil {
			return err
		}
		w, ok := want[resp.Id]
		if !ok {
			return fmt.Errorf("answer with unknown or repeated ID %d", resp.Id)
		}
		delete(want, resp.Id)
		if got := rdata(resp.Answer); got != w || resp.Rcode != dns.RcodeSuccess {
			return fmt.Errorf("ID %d (%s): answer %q, want %q", resp.Id, resp.Question[0].Name, got, w)
		}
	}
	return nil
}

func hasIPv6Loopback() bool {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Command smokedns is the corporate resolver of the smoke test
// (scripts/smoke.sh), which runs where the lab's dnsmasq is not at hand
// (hosted macOS and Windows runners): it answers every A query under one
// zone with one address, and AAAA queries there with no data.
package main

import (
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5353", "UDP address to answer on")
	zone := flag.String("zone", "smoke.test", "zone whose names are answered")
	addr := flag.String("addr", "127.0.0.1", "IPv4 address every name in the zone has")
	flag.Parse()
	ip := net.ParseIP(*addr).To4()
	if ip == nil {
		log.Fatalf("smokedns: -addr %q is not an IPv4 address", *addr)
	}
	suffix := dns.Fqdn(strings.ToLower(*zone))
	srv := &dns.Server{Addr: *listen, Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		if len(q.Question) != 1 || !dns.IsSubDomain(suffix, strings.ToLower(q.Question[0].Name)) {
			m.Rcode = dns.RcodeRefused
		} else if qq := q.Question[0]; qq.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{A: ip,
				Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}})
		}
		w.WriteMsg(m)
	})}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Shutdown()
	}()
	log.Printf("smokedns: %s answers %s with %s", *listen, suffix, ip)
	if err := srv.ListenAndServe(); err != nil {
		log.Fatalf("smokedns: %v", err)
	}
}

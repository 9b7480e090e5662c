// Command dnsfloor is the least a DNS forwarder can do, for
// scripts/bench-dns.sh: it reads queries on one UDP socket, sends each
// unchanged to one upstream over one connected socket, and sends the answer
// back to whoever asked under that ID. No cache, no policy, no retry, no
// check of the answer, one goroutine per socket: what it adds to the
// upstream's latency is what the machine, the kernel and Go's runtime cost
// any forwarder, the floor under the agent's own figure.
//
// Usage:
//
//	dnsfloor -listen 100.64.0.1:5355 -upstream 10.10.0.1:53
//
// Two queries in flight with the same ID collide (the second wins): the
// bench's random IDs at a few thousand queries per second make that rare, and
// a collision shows as a lost query, never as a faster one.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
)

func main() {
	listen := flag.String("listen", "", "address:port to answer on")
	upstream := flag.String("upstream", "", "address:port of the upstream server")
	flag.Parse()
	la, err1 := netip.ParseAddrPort(*listen)
	ua, err2 := netip.ParseAddrPort(*upstream)
	if err1 != nil || err2 != nil || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: dnsfloor -listen ADDR:PORT -upstream ADDR:PORT")
		os.Exit(2)
	}
	client, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(la))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsfloor:", err)
		os.Exit(1)
	}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ua))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsfloor:", err)
		os.Exit(1)
	}
	var (
		mu     sync.Mutex
		askers = make(map[uint16]netip.AddrPort)
	)
	go func() {
		b := make([]byte, 65535)
		for {
			n, err := up.Read(b)
			if err != nil {
				fmt.Fprintln(os.Stderr, "dnsfloor:", err)
				os.Exit(1)
			}
			if n < 2 {
				continue
			}
			id := binary.BigEndian.Uint16(b)
			mu.Lock()
			to, ok := askers[id]
			delete(askers, id)
			mu.Unlock()
			if ok {
				client.WriteToUDPAddrPort(b[:n], to)
			}
		}
	}()
	b := make([]byte, 65535)
	for {
		n, from, err := client.ReadFromUDPAddrPort(b)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dnsfloor:", err)
			os.Exit(1)
		}
		if n < 2 {
			continue
		}
		mu.Lock()
		askers[binary.BigEndian.Uint16(b)] = from
		mu.Unlock()
		up.Write(b[:n])
	}
}

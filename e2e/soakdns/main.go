//go:build linux

// Command soakdns is the lab's "public" DNS server during the DNS soak
// (e2e TestDNSSoak, `lab.sh soak-dns`), in place of the lab's dnsmasq: the
// soak sends the agent's upstream up to 12,000 queries/s, more than one
// dnsmasq process keeps up with on the shared lab machine (it drops them at
// its socket, whose buffer it leaves at the system's default), and dnsmasq's
// answers have TTL 0, which no cache may keep, so that the soak's repeated
// public names were all misses. soakdns answers like the lab's dnsmasq but
// with a TTL, from several SO_REUSEPORT sockets with large receive buffers,
// reading and answering in batches.
//
// It answers A queries for names under -zone with -addr (other types there:
// NOERROR, no data), NXDOMAIN for names under -nx, and REFUSED for the rest,
// as dnsmasq with --address and --no-resolv does. Answers carry no EDNS
// record. Drops at its sockets are counted by the kernel (the namespace's
// Udp RcvbufErrors, which the soak reads).
//
// Usage:
//
//	soakdns -listen 10.10.0.1:53 -zone public.test -addr 10.10.0.1 -nx nx.test -ttl 300
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

const (
	headerLen = 12
	batch     = 32
	// readBuffer is asked for each socket; Linux caps it at net.core.rmem_max.
	readBuffer = 4 << 20
)

type config struct {
	zone, nx string // lower case, with the trailing dot
	addr     [4]byte
	ttl      uint32
}

func main() {
	listen := flag.String("listen", "10.10.0.1:53", "UDP address to answer on")
	zone := flag.String("zone", "public.test", "names answered with -addr")
	nx := flag.String("nx", "nx.test", "names answered NXDOMAIN")
	addr := flag.String("addr", "10.10.0.1", "the IPv4 address of every name under -zone")
	ttl := flag.Uint("ttl", 300, "TTL of the answers, in seconds")
	sockets := flag.Int("sockets", runtime.GOMAXPROCS(0), "SO_REUSEPORT sockets, one reader each")
	flag.Parse()
	a, err := netip.ParseAddr(*addr)
	if err != nil || !a.Is4() || *sockets < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: soakdns [-listen ADDR:PORT] [-zone Z] [-nx Z] [-addr IPv4] [-ttl S] [-sockets N]")
		os.Exit(2)
	}
	c := &config{zone: fqdn(*zone), nx: fqdn(*nx), addr: a.As4(), ttl: uint32(*ttl)}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var wg sync.WaitGroup
	for range *sockets {
		pc, err := lc.ListenPacket(context.Background(), "udp4", *listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soakdns:", err)
			os.Exit(1)
		}
		pc.(*net.UDPConn).SetReadBuffer(readBuffer)
		wg.Add(1)
		go func() { defer wg.Done(); c.serve(ipv4.NewPacketConn(pc)) }()
	}
	wg.Wait()
}

func fqdn(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) + "." }

// serve answers the queries arriving on pc until reading fails.
func (c *config) serve(pc *ipv4.PacketConn) {
	in, out := make([]ipv4.Message, batch), make([]ipv4.Message, 0, batch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 512)}
	}
	replies := make([][]byte, batch)
	for i := range replies {
		replies[i] = make([]byte, 0, 512+16)
	}
	for {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soakdns:", err)
			os.Exit(1)
		}
		out = out[:0]
		for i := range in[:n] {
			r := c.answer(replies[i][:0], in[i].Buffers[0][:in[i].N])
			if r == nil {
				continue
			}
			replies[i] = r
			// replies[i:i+1] is r's one buffer, with no slice made for it.
			out = append(out, ipv4.Message{Buffers: replies[i : i+1], Addr: in[i].Addr})
		}
		for len(out) > 0 {
			k, err := pc.WriteBatch(out, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, "soakdns: write:", err)
				k = 1 // skip the reply that failed
			}
			out = out[k:]
		}
	}
}

// answer appends to dst the answer to query q, or returns nil for what is no
// query with one question.
func (c *config) answer(dst, q []byte) []byte {
	if len(q) < headerLen || q[2]&0x80 != 0 || q[2]&0x78 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	var nb [256]byte // a name's most, on the stack
	name, end, ok := questionName(nb[:0], q)
	if !ok {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[end-4:])
	rcode, answer := byte(5), false // REFUSED
	switch {
	case under(name, c.zone):
		rcode, answer = 0, qtype == 1 // A
	case under(name, c.nx):
		rcode = 3 // NXDOMAIN
	}
	dst = append(dst, q[:end]...)
	dst[2] = 0x80 | q[2]&0x01 | 0x04 // QR, RD copied, AA
	dst[3] = 0x80 | rcode            // RA
	binary.BigEndian.PutUint16(dst[6:], 0)
	binary.BigEndian.PutUint16(dst[8:], 0)
	binary.BigEndian.PutUint16(dst[10:], 0)
	if answer {
		binary.BigEndian.PutUint16(dst[6:], 1)
		dst = append(dst, 0xc0, headerLen, 0, 1, 0, 1) // the question's name, A, IN
		dst = binary.BigEndian.AppendUint32(dst, c.ttl)
		dst = append(dst, 0, 4)
		dst = append(dst, c.addr[:]...)
	}
	return dst
}

// questionName appends to dst the question's name in lower case (ASCII, as
// DNS compares names) with the trailing dot, and returns it and where the
// question ends. It allocates nothing while dst has room.
func questionName(dst, q []byte) ([]byte, int, bool) {
	i := headerLen
	for {
		if i >= len(q) {
			return nil, 0, false
		}
		l := int(q[i])
		if l == 0 {
			i++
			break
		}
		if l&0xc0 != 0 || i+1+l > len(q) {
			return nil, 0, false
		}
		for _, c := range q[i+1 : i+1+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
		dst = append(dst, '.')
		i += 1 + l
	}
	if i+4 > len(q) {
		return nil, 0, false
	}
	if len(dst) == 0 {
		dst = append(dst, '.')
	}
	return dst, i + 4, true
}

// under reports whether name is zone or a name under it.
func under(name []byte, zone string) bool {
	n := len(name) - len(zone)
	return n == 0 && string(name) == zone ||
		n > 0 && name[n-1] == '.' && string(name[n:]) == zone
}

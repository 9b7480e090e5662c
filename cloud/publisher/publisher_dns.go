package publisher

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// resolvConf is where the system resolver's servers are read from when a
// publisher has no Resolver configured.
const resolvConf = "/etc/resolv.conf"

// udpBufPool holds buffers for UDP answers, which may be as large as a message.
var udpBufPool = sync.Pool{New: func() any { b := make([]byte, l7.MaxDNSMessage); return &b }}

// serveDNS answers a DoH query from the PoP with the configured resolver's answer.
func (p *Publisher) serveDNS(w http.ResponseWriter, r *http.Request) {
	q, status, err := l7.ParseDNSRequest(r)
	if err != nil {
		l7.Refuse(w, status, err.Error())
		return
	}
	server := p.cfg.Resolver
	if server == "" {
		if server, err = systemDNSServer(resolvConf); err != nil {
			p.log.Debug("DNS query without a resolver", zap.String("app", q.AppID), zap.Error(err))
			l7.Refuse(w, http.StatusBadGateway, "resolve "+q.QName+": "+err.Error())
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.DialTimeout)
	defer cancel()
	answer, err := exchangeDNS(ctx, server, q.Body)
	if err != nil {
		p.log.Debug("DNS query failed", zap.String("qname", q.QName), zap.String("app", q.AppID), zap.Error(err))
		l7.Refuse(w, dnsFailStatus(ctx, err), "resolve "+q.QName+": "+reason(err))
		return
	}
	l7.WriteDNSAnswer(w, answer)
}

// dnsFailStatus is 504 when the exchange ran out of time, 502 otherwise. The
// socket's deadline is ctx's, so the socket may time out before ctx notices.
func dnsFailStatus(ctx context.Context, err error) int {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	return failStatus(ctx)
}

// systemDNSServer returns the first nameserver of the system's resolver
// configuration, as "ip:port".
func systemDNSServer(path string) (string, error) {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return "", fmt.Errorf("no resolver configured: %w", err)
	}
	if len(cfg.Servers) == 0 {
		return "", fmt.Errorf("no resolver configured: no nameserver in %s", path)
	}
	return net.JoinHostPort(cfg.Servers[0], cfg.Port), nil
}

// exchangeDNS sends query to server over UDP, and again over TCP if the answer is
// truncated (keeping the truncated answer if TCP fails), and returns the answer unchanged but for its ID, which is the
// query's. On the wire the query carries a random ID (the DoH query's is 0, which
// would make answers easy to spoof) and an answer must match it and the question.
func exchangeDNS(ctx context.Context, server string, query []byte) ([]byte, error) {
	id := binary.BigEndian.Uint16(query)
	q := make([]byte, len(query))
	copy(q, query)
	binary.BigEndian.PutUint16(q, uint16(rand.Uint32()))
	answer, err := exchangeUDP(ctx, server, q)
	if err != nil {
		return nil, err
	}
	if answer[2]&0x02 != 0 { // TC
		// A resolver that cannot answer over TCP still gave a valid, if
		// truncated, answer: better that than none.
		if full, err := exchangeTCP(ctx, server, q); err == nil {
			answer = full
		}
	}
	binary.BigEndian.PutUint16(answer, id)
	return answer, nil
}

// dnsConn dials server and ties the connection's deadline to ctx: its deadline,
// and an immediate one when ctx is canceled (the PoP reset the stream).
func dnsConn(ctx context.Context, network, server string) (net.Conn, func(), error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, server)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return c, func() { stop(); c.Close() }, nil
}

// exchangeUDP sends q and waits for the answer that matches it, ignoring others
// (late answers to earlier queries, spoofing attempts).
func exchangeUDP(ctx context.Context, server string, q []byte) ([]byte, error) {
	c, done, err := dnsConn(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(buf)
	for {
		n, err := c.Read(*buf)
		if err != nil {
			return nil, err
		}
		if answers((*buf)[:n], q) {
			return append([]byte(nil), (*buf)[:n]...), nil
		}
	}
}

// exchangeTCP sends q with its length prefix (RFC 1035 §4.2.2) and reads the answer.
func exchangeTCP(ctx context.Context, server string, q []byte) ([]byte, error) {
	c, done, err := dnsConn(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		return nil, err
	}
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	answer := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, answer); err != nil {
		return nil, err
	}
	if !answers(answer, q) {
		return nil, errors.New("answer over TCP does not match the query")
	}
	return answer, nil
}

// answers reports whether msg is an answer to q: a response with q's ID and, unless
// it carries no question (as some error answers do), q's question.
func answers(msg, q []byte) bool {
	if len(msg) < l7.DNSHeaderLen || msg[0] != q[0] || msg[1] != q[1] || msg[2]&0x80 == 0 {
		return false
	}
	if binary.BigEndian.Uint16(msg[4:]) == 0 {
		return true
	}
	end, ok := questionEnd(q)
	return ok && len(msg) >= end && equalFoldASCII(msg[l7.DNSHeaderLen:end], q[l7.DNSHeaderLen:end])
}

// questionEnd returns the offset just past the first question of a message whose
// question name is uncompressed (as in every query).
func questionEnd(msg []byte) (int, bool) {
	i := l7.DNSHeaderLen
	for i < len(msg) {
		l := int(msg[i])
		switch {
		case l == 0:
			i += 1 + 4 // the root label, then QTYPE and QCLASS
			return i, i <= len(msg)
		case l&0xc0 != 0:
			return 0, false // a pointer, or an obsolete label type
		}
		i += 1 + l
	}
	return 0, false
}

// equalFoldASCII compares names in wire format, ignoring the case of ASCII
// letters only (RFC 4343).
func equalFoldASCII(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

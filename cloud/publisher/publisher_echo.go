package publisher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// ICMP echo: the publisher pings an app's host on a client's behalf and
// answers with the real reply's data, so `ping web.corp.test` on a laptop
// measures the real host. Each echo gets its own socket: an unprivileged ICMP
// "ping" socket (SOCK_DGRAM, IPPROTO_ICMP; Linux needs the publisher's group
// in net.ipv4.ping_group_range, which covers IPv6 too), else a raw socket
// when the publisher may open one (root, CAP_NET_RAW). The kernel gives each
// ping socket its own identifier and delivers it only its replies; on a raw
// socket the identifier is random and replies are matched by it.

const (
	// echoTimeout is how long the publisher waits for a host's reply: past
	// it the echo is refused with 504 and the client sees no reply.
	echoTimeout = 5 * time.Second
	// maxEchoes bounds the echoes in flight, each a socket; more are
	// refused with 429.
	maxEchoes = 256
)

// icmpKind is the kind of ICMP socket the publisher pings with.
type icmpKind string

const (
	kindPing icmpKind = "unprivileged ping sockets"
	kindRaw  icmpKind = "raw sockets"
	kindNone icmpKind = "none"
)

// pinger sends echoes; its zero value is not usable (see newPinger).
type pinger struct {
	log     *zap.Logger
	sem     chan struct{}
	timeout time.Duration // echoTimeout; tests shorten it

	mu   sync.Mutex
	kind [2]icmpKind // last kind used per family (IPv4, IPv6), for logging changes once
}

func newPinger(log *zap.Logger) *pinger {
	return &pinger{log: log, sem: make(chan struct{}, maxEchoes), timeout: echoTimeout}
}

// errNoICMP: the publisher may open neither kind of ICMP socket.
var errNoICMP = errors.New("the publisher cannot send ICMP echoes: add its group to net.ipv4.ping_group_range, or run it as root")

// listen opens an ICMP socket for family v6, a ping socket if it may, else
// a raw one, and logs the kind when it differs from the last one's.
func (pg *pinger) listen(v6 bool) (*icmp.PacketConn, icmpKind, error) {
	ping, raw, any := "udp4", "ip4:icmp", "0.0.0.0"
	if v6 {
		ping, raw, any = "udp6", "ip6:ipv6-icmp", "::"
	}
	kind := kindPing
	c, err := icmp.ListenPacket(ping, any)
	if err != nil {
		var rerr error
		if c, rerr = icmp.ListenPacket(raw, any); rerr == nil {
			kind = kindRaw
		} else {
			kind, err = kindNone, fmt.Errorf("%w (ping socket: %v; raw socket: %v)", errNoICMP, err, rerr)
		}
	}
	pg.noteKind(v6, kind, err)
	if kind == kindNone {
		return nil, kind, err
	}
	return c, kind, nil
}

func (pg *pinger) noteKind(v6 bool, kind icmpKind, err error) {
	fam, name := 0, "IPv4"
	if v6 {
		fam, name = 1, "IPv6"
	}
	pg.mu.Lock()
	changed := pg.kind[fam] != kind
	pg.kind[fam] = kind
	pg.mu.Unlock()
	switch {
	case !changed:
	case kind == kindNone:
		pg.log.Warn("ICMP echo unavailable", zap.String("family", name), zap.Error(err))
	default:
		pg.log.Info("ICMP echo through "+string(kind), zap.String("family", name))
	}
}

// serveEcho pings an echo request's host and answers with the real reply.
func (p *Publisher) serveEcho(w http.ResponseWriter, r *http.Request) {
	req, status, err := l7.ParseEchoRequest(r)
	if err != nil {
		l7.Refuse(w, status, err.Error())
		return
	}
	select {
	case p.pinger.sem <- struct{}{}:
		defer func() { <-p.pinger.sem }()
	default:
		l7.Refuse(w, http.StatusTooManyRequests, fmt.Sprintf("more than %d echoes in flight at the publisher", maxEchoes))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.DialTimeout+echoTimeout)
	defer cancel()
	addr, err := p.echoAddr(ctx, req)
	if err != nil {
		l7.Refuse(w, failStatus(ctx), "resolve "+req.Host+": "+reason(err))
		return
	}
	rep, status, err := p.pinger.ping(ctx, addr, req.Data)
	if err != nil {
		p.log.Debug("echo failed", zap.String("host", req.Host), zap.Stringer("addr", addr), zap.String("app", req.AppID), zap.Error(err))
		l7.Refuse(w, status, err.Error())
		return
	}
	l7.WriteEchoReply(w, rep)
}

// echoAddr resolves the host of req with the publisher's resolver, preferring
// an address of the family the client pinged with.
func (p *Publisher) echoAddr(ctx context.Context, req l7.EchoRequest) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	addrs, err := p.resolve(ctx, p.rooted(req.Host))
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if a.Is6() == req.IPv6 {
			return a, nil
		}
	}
	return addrs[0], nil
}

// ping sends one echo with data to dst and waits for its reply, within
// pg.timeout and ctx. On failure it returns the status to refuse with: 504
// for no reply in time, 502 when the echo could not be sent (no route), 503
// when the publisher may not send ICMP at all.
func (pg *pinger) ping(ctx context.Context, dst netip.Addr, data []byte) (l7.EchoReply, int, error) {
	c, kind, err := pg.listen(dst.Is6())
	if err != nil {
		return l7.EchoReply{}, http.StatusServiceUnavailable, err
	}
	defer c.Close()
	deadline := time.Now().Add(pg.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	// A reset from the PoP ends the wait at once.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	id, seq := rand.N(1<<16), rand.N(1<<16)
	msg, err := echoMessage(dst.Is6(), id, seq, data)
	if err != nil {
		return l7.EchoReply{}, http.StatusBadRequest, err
	}
	to := net.Addr(&net.UDPAddr{IP: dst.AsSlice()})
	if kind == kindRaw {
		to = &net.IPAddr{IP: dst.AsSlice()}
	}
	sent := time.Now()
	if _, err := c.WriteTo(msg, to); err != nil {
		return l7.EchoReply{}, http.StatusBadGateway, fmt.Errorf("send echo to %s: %s", dst, reason(err))
	}
	// Room for a reply a little longer than the request; other messages
	// may be cut short, as they are ignored.
	buf := make([]byte, len(msg)+512)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
				return l7.EchoReply{}, http.StatusGatewayTimeout, fmt.Errorf("no reply from %s within %s", dst, deadline.Sub(sent).Round(time.Millisecond))
			}
			if ctx.Err() != nil {
				return l7.EchoReply{}, failStatus(ctx), ctx.Err()
			}
			return l7.EchoReply{}, http.StatusBadGateway, fmt.Errorf("read echo reply from %s: %s", dst, reason(err))
		}
		rtt := time.Since(sent)
		if reply, ok := matchReply(buf[:n], from, dst, kind, id, seq); ok {
			return l7.EchoReply{Data: reply, Addr: dst, RTT: rtt}, http.StatusOK, nil
		}
	}
}

// echoMessage is an ICMP echo request. The checksum is computed here for
// ICMPv4 and by the kernel for ICMPv6 (it needs the source address); on a
// ping socket the kernel also replaces the identifier with the socket's.
func echoMessage(v6 bool, id, seq int, data []byte) ([]byte, error) {
	m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: data}}
	if v6 {
		m.Type = ipv6.ICMPTypeEchoRequest
	}
	return m.Marshal(nil)
}

// matchReply reports whether b, an ICMP message from the socket, is the reply
// to our echo and returns its data (a copy). Other messages are ignored: on a
// raw socket, every ICMP message of the host arrives (our own request too,
// when pinging a local address).
func matchReply(b []byte, from net.Addr, dst netip.Addr, kind icmpKind, id, seq int) ([]byte, bool) {
	proto := 1
	if dst.Is6() {
		proto = 58
	}
	m, err := icmp.ParseMessage(proto, b)
	if err != nil || (m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply) {
		return nil, false
	}
	e, ok := m.Body.(*icmp.Echo)
	if !ok || e.Seq != seq || (kind == kindRaw && e.ID != id) || fromAddr(from) != dst {
		return nil, false
	}
	return append([]byte{}, e.Data...), true
}

func fromAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

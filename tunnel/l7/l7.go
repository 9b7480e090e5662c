// Package l7 is the agent's end of ztagent's L7 tunnel, and the wire format its
// three ends share. TCP flows are carried as HTTP/2 CONNECT streams (RFC 9113
// §8.5) over one mutually authenticated TLS 1.3 connection to the PoP: the
// Client opens a stream whose :authority is the original FQDN (or address) and
// port and whose Zt-App header names the private app; the PoP (cloud/pop)
// authorizes it and stitches it to a stream on the connection a publisher
// (cloud/publisher) dialed to it, and the publisher resolves the name with its
// own resolver, connects, and relays. Half-closes travel as END_STREAM and end
// as TCP FINs; errors travel as RST_STREAM. Flow-control windows and frame
// sizes are sized for the bandwidth-delay product of a fast path, not left at
// the library's defaults, which cap a stream at a few hundred Mbit/s. One
// asymmetry comes from net/http's server side: a stream's response cannot end
// while its request is still being read, so when a target half-closes first the
// flow ends in both directions.
//
// UDP flows are HTTP/2 extended CONNECT streams (RFC 8441) with :protocol
// connect-udp (RFC 9298): :scheme https, :authority the server's (the PoP's
// address; "publisher.invalid" from the PoP to a publisher), :path
// /.well-known/masque/udp/{host}/{port}/ with the host percent-encoded outside
// RFC 3986's unreserved characters, "capsule-protocol: ?1" and the Zt-App
// header. A 2xx answer (with "capsule-protocol: ?1") opens the flow; refusals
// are those of TCP. Both directions then carry RFC 9297 capsules: each
// datagram is one DATAGRAM capsule (type 0x00, length, context ID 0, the UDP
// payload of at most MaxDatagram bytes), so datagram boundaries are kept;
// other capsule types and context IDs are skipped. The PoP relays the capsule
// stream byte for byte; the publisher sends each datagram on a connected UDP
// socket to the target. A flow ends when the agent resets its stream (the
// flow went idle) or a side's stream ends. Extended CONNECT is used only after
// the peer's SETTINGS_ENABLE_CONNECT_PROTOCOL, which Server announces.
//
// Names of publisher-DNS apps are resolved on the same connection with
// DNS-over-HTTPS (RFC 8484): the Client POSTs the query (wire format, ID 0) to
// /dns-query with the Zt-App header; the PoP authorizes its one question for the
// device and app and forwards the same request to a publisher of the app, which
// exchanges it with its resolver and returns the answer unchanged but for the
// ID, so that the addresses the agent routes are the corporate network's own.
// Refusals are the same statuses as for streams.
//
// ICMP echo (ping) to an app's host travels one echo per stream: the Client
// POSTs the echo's data (without identifier and sequence number, which stay
// with the agent) to /icmp-echo, with the host as :authority (a name, or an
// address literal, IPv6 in brackets; no port), the Zt-App header and
// Zt-Echo-Family (4 or 6, the family the client pinged with). The PoP
// authorizes the host for the device and app (an echo has no port: a user who
// may reach the app may ping its hosts) and forwards the same request to a
// publisher of the app, which resolves the host, sends a real echo with the
// data to it from its own ICMP socket, and answers 200 with the reply's data
// as the body, the address it pinged in Zt-Echo-Addr and its own round trip
// in Zt-Echo-Rtt (microseconds), only once the real reply has come. No reply
// within its timeout is 504, a host that cannot be resolved or reached 502,
// too many echoes in flight at the publisher 429; the agent never answers an
// echo the publisher did not.
//
// Publisher selection uses the same connection (probe.go): the agent measures
// its RTT through the PoP to a publisher with GET /probe, which the PoP
// forwards to that publisher, and sends the publishers it selected per app
// (the lowest RTT bucket, steering.RTTBuckets) with POST /selection, whose
// response the PoP holds open to say when the selection goes stale. A Client
// may be given several PoPs (pops.go): each connection attempt races a
// handshake to all of them and keeps the first to complete.
//
// What the ends must agree on lives here once, exported for cloud/pop and
// cloud/publisher: ALPN names, headers, Target and its parsing, refusals, DoH
// framing, echo framing, the capsule codec and datagram conns, the HTTP/2
// server settings and the client connection (ClientConn),
// TLS dialing and accepting, and the reconnect backoff.
package l7

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ALPN protocol names. Clients speak HTTP/2 to the PoP; publishers announce
// themselves with their own protocol so that the PoP knows to flip roles.
const (
	ALPNClient    = "h2"
	ALPNPublisher = "zt-publisher"
)

// Header names carried on CONNECT requests and refusals.
const (
	HeaderApp    = "Zt-App"
	HeaderReason = "Zt-Reason"
)

// Flow control and buffering. A single stream cannot go faster than window/RTT, so the
// stream window must cover the bandwidth-delay product of the path (16 MiB is ~1.3 Gbit/s
// at 100 ms, far more on a LAN). The connection window bounds the memory a peer may
// make us buffer across all streams. Large frames keep the per-byte cost of framing,
// TLS records and goroutine hand-offs low; copies borrow their buffers from
// tunnel/flowio only while data moves.
const (
	maxFrameSize      = 1 << 20
	streamWindow      = 16 << 20
	connWindow        = 64 << 20
	dialReadBuffer    = 256 << 10 // under TLS, per dialed connection (agent, publisher)
	acceptReadBuffer  = 64 << 10  // under TLS, per connection the PoP accepts (many)
	maxStreamsPerConn = 1 << 15

	// Keepalives detect a dead peer on an idle connection (NAT timeouts, a laptop
	// resuming from sleep): a PING after ReadIdle of silence, and the connection is
	// closed if no answer comes within pingTimeout.
	ReadIdle    = 15 * time.Second
	pingTimeout = 10 * time.Second

	HandshakeTimeout   = 10 * time.Second
	DefaultDialTimeout = 10 * time.Second
	DefaultOpenTimeout = 30 * time.Second
	defaultRetryMin    = 500 * time.Millisecond
	defaultRetryMax    = 30 * time.Second
)

// Target is the destination of one flow: the host as the application named it (an
// FQDN or a literal address), the port, the private app the flow matched, and the
// transport (TCP, the zero value, or UDP).
type Target struct {
	Host  string
	Port  uint16
	AppID string
	Proto Proto
}

// Proto is the transport protocol of a flow.
type Proto uint8

const (
	ProtoTCP Proto = iota // a CONNECT stream
	ProtoUDP              // a connect-udp stream of DATAGRAM capsules (udp.go)
)

// String returns "tcp" or "udp", the names the tenant's policy takes.
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// Authority returns the CONNECT :authority for t ("host:port", IPv6 in brackets).
func (t Target) Authority() string {
	return net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port)))
}

func (t Target) String() string {
	s := t.Authority()
	if t.Proto != ProtoTCP {
		s += "/" + t.Proto.String()
	}
	if t.AppID != "" {
		s += " (app " + t.AppID + ")"
	}
	return s
}

// ErrNotConnected is returned by Client.Open and Client.ResolveDNS while the tunnel
// has no usable connection to the PoP. They fail fast rather than wait for a
// reconnect.
var ErrNotConnected = errors.New("l7: tunnel not connected")

// ErrBadTarget is returned by Client.Open for a target without a host or a port.
var ErrBadTarget = errors.New("l7: target needs a host and a port")

// ErrRefused matches every *RefusedError with errors.Is.
var ErrRefused = errors.New("l7: stream refused")

// RefusedError is the PoP's (or, through it, the publisher's) refusal of a stream
// or a DNS query:
//
//	400 malformed request         403 denied by policy
//	413, 415 DNS query too large, or not application/dns-message
//	502 publisher could not reach the target (or resolve it; or its resolver failed)
//	503 no publisher of the app is online
//	504 timed out reaching the target (or the resolver, or the publisher)
type RefusedError struct {
	Status int
	Reason string
}

func (e *RefusedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("l7: stream refused: %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("l7: stream refused: %d %s: %s", e.Status, http.StatusText(e.Status), e.Reason)
}

// Is reports whether target is ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// ParseTarget reads the target of a CONNECT or connect-udp request on the
// serving side.
func ParseTarget(r *http.Request) (Target, error) {
	if IsConnectUDP(r) {
		return parseUDPTarget(r)
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		return Target{}, fmt.Errorf("bad authority %q: %w", r.Host, err)
	}
	if host == "" {
		return Target{}, fmt.Errorf("bad authority %q: empty host", r.Host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return Target{}, fmt.Errorf("bad authority %q: bad port", r.Host)
	}
	return Target{Host: host, Port: uint16(p), AppID: r.Header.Get(HeaderApp)}, nil
}

// IsConnect reports whether r is a classic CONNECT (not an extended CONNECT, which
// carries a :protocol pseudo-header and is reserved for datagram flows).
func IsConnect(r *http.Request) bool {
	return r.Method == http.MethodConnect && r.Header.Get(":protocol") == ""
}

// Refuse answers a stream with a status and a reason the client turns into a
// RefusedError.
func Refuse(w http.ResponseWriter, status int, reason string) {
	if reason != "" {
		w.Header().Set(HeaderReason, sanitizeReason(reason))
	}
	w.WriteHeader(status)
}

// sanitizeReason keeps a reason a valid, bounded header value.
func sanitizeReason(s string) string {
	const max = 256
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		b = append(b, c)
	}
	return string(b)
}

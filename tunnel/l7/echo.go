package l7

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2/hpack"
)

// ICMP echo (ping) as carried on the tunnel: one POST per echo, whose body is
// the echo's data and whose answer carries the data of the real host's reply.
// The identifier and sequence number stay with the agent, which matches the
// answer to the request by its stream; the publisher pings with its own.
const (
	EchoPath = "/icmp-echo"
	// HeaderEchoFamily ("4" or "6") is the IP version the client pinged
	// with: the publisher prefers an address of that family for a name.
	HeaderEchoFamily = "Zt-Echo-Family"
	// HeaderEchoAddr names the address the publisher pinged; HeaderEchoRTT is
	// the round trip it measured there, in microseconds (for diagnostics:
	// the client's own timing includes the tunnel).
	HeaderEchoAddr = "Zt-Echo-Addr"
	HeaderEchoRTT  = "Zt-Echo-Rtt"

	// MaxEchoData is the most data an echo carries: what fits in one IPv4
	// packet after its header and the ICMP header.
	MaxEchoData = 65535 - 20 - 8
)

// ErrBadEcho is returned by Client.Echo for an echo without a host or with
// more than MaxEchoData bytes of data.
var ErrBadEcho = errors.New("l7: echo needs a host and at most 65507 bytes of data")

var errEchoTooLarge = errors.New("echo data longer than 65507 bytes")

// EchoRequest is one ICMP echo to carry: the host as the agent knows it (the
// FQDN behind a stub address, or an address literal without brackets), the
// app it belongs to, the family the client pinged with, and the echo's data.
type EchoRequest struct {
	Host  string
	AppID string
	IPv6  bool
	Data  []byte
}

// authority is the request's :authority: the host, an IPv6 literal in
// brackets, no port (an echo has none).
func (e EchoRequest) authority() string {
	if strings.Contains(e.Host, ":") {
		return "[" + e.Host + "]"
	}
	return e.Host
}

// EchoReply is the real host's answer to an echo, as the publisher received
// it.
type EchoReply struct {
	Data []byte
	Addr netip.Addr    // the address the publisher pinged
	RTT  time.Duration // measured at the publisher
}

// Echo carries req through the PoP to a publisher of its app, which pings the
// host and answers with the real reply's data. Errors are Open's:
// ErrNotConnected at once while the tunnel is down, *RefusedError when the
// PoP or publisher refuses (403 denied by policy, 503 no publisher online, 502
// host unknown or unreachable, 504 no reply in time, 429 too many echoes at
// the publisher). ctx bounds the whole exchange.
func (c *Client) Echo(ctx context.Context, req EchoRequest) (EchoReply, error) {
	if req.Host == "" || len(req.Data) > MaxEchoData {
		return EchoReply{}, ErrBadEcho
	}
	tc := c.cur.Load()
	if tc == nil || !tc.cc.CanTakeNewRequest() {
		return EchoReply{}, ErrNotConnected
	}
	rep, err := tc.cc.Echo(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return EchoReply{}, ctx.Err()
		}
		return EchoReply{}, c.requestError(tc, "echo to "+req.Host, err)
	}
	return rep, nil
}

// Echo sends req as an echo request on a new stream and returns the reply, or
// a *RefusedError. ctx bounds the whole exchange.
func (cc *ClientConn) Echo(ctx context.Context, req EchoRequest) (EchoReply, error) {
	family := "4"
	if req.IPv6 {
		family = "6"
	}
	var rep EchoReply
	err := cc.post(ctx, []hpack.HeaderField{
		{Name: ":method", Value: http.MethodPost},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: req.authority()},
		{Name: ":path", Value: EchoPath},
		{Name: "zt-app", Value: req.AppID},
		{Name: "zt-echo-family", Value: family},
		{Name: "content-length", Value: strconv.Itoa(len(req.Data))},
	}, req.Data, func(status int, h http.Header, body io.Reader) (err error) {
		rep, err = readEchoReply(status, h, body)
		return err
	})
	return rep, err
}

func readEchoReply(status int, h http.Header, body io.Reader) (EchoReply, error) {
	if status != http.StatusOK {
		return EchoReply{}, &RefusedError{Status: status, Reason: h.Get(HeaderReason)}
	}
	var rep EchoReply
	var err error
	if rep.Addr, err = netip.ParseAddr(h.Get(HeaderEchoAddr)); err != nil {
		return EchoReply{}, fmt.Errorf("echo reply without a valid %s: %w", HeaderEchoAddr, err)
	}
	if v := h.Get(HeaderEchoRTT); v != "" {
		us, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return EchoReply{}, fmt.Errorf("echo reply with %s %q", HeaderEchoRTT, v)
		}
		rep.RTT = time.Duration(us) * time.Microsecond
	}
	n, err := contentLength(h)
	if err != nil {
		return EchoReply{}, err
	}
	if rep.Data, err = readBody(body, n, MaxEchoData, errEchoTooLarge); err != nil {
		return EchoReply{}, fmt.Errorf("read echo reply: %w", err)
	}
	return rep, nil
}

// contentLength is a response's declared body length, -1 when it has none.
func contentLength(h http.Header) (int64, error) {
	v := h.Get("Content-Length")
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("answer with content length %q", v)
	}
	return n, nil
}

// WriteEchoReply answers an echo request with the real host's reply.
func WriteEchoReply(w http.ResponseWriter, rep EchoReply) {
	h := w.Header()
	h.Set(HeaderEchoAddr, rep.Addr.String())
	h.Set(HeaderEchoRTT, strconv.FormatInt(rep.RTT.Microseconds(), 10))
	h.Set("Content-Length", strconv.Itoa(len(rep.Data)))
	w.WriteHeader(http.StatusOK)
	w.Write(rep.Data)
}

// IsEchoRequest reports whether r is an echo request, which the PoP and the
// publisher serve.
func IsEchoRequest(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL != nil && r.URL.Path == EchoPath
}

// ParseEchoRequest reads and checks an echo request on the serving side. On
// failure it returns the status to refuse the request with.
func ParseEchoRequest(r *http.Request) (EchoRequest, int, error) {
	req := EchoRequest{AppID: r.Header.Get(HeaderApp)}
	if req.AppID == "" {
		return req, http.StatusBadRequest, errors.New("no " + HeaderApp + " header")
	}
	host, err := echoHost(r.Host)
	if err != nil {
		return req, http.StatusBadRequest, err
	}
	req.Host = host
	switch f := r.Header.Get(HeaderEchoFamily); f {
	case "4":
	case "6":
		req.IPv6 = true
	default:
		return req, http.StatusBadRequest, fmt.Errorf("%s %q, want 4 or 6", HeaderEchoFamily, f)
	}
	req.Data, err = readBody(r.Body, r.ContentLength, MaxEchoData, errEchoTooLarge)
	switch {
	case errors.Is(err, errEchoTooLarge):
		return req, http.StatusRequestEntityTooLarge, err
	case err != nil:
		return req, http.StatusBadRequest, fmt.Errorf("read echo data: %w", err)
	}
	return req, http.StatusOK, nil
}

// echoHost reads the host of an echo's :authority: a name, an IPv4 literal,
// or an IPv6 literal in brackets; no port.
func echoHost(authority string) (string, error) {
	if inner, ok := strings.CutPrefix(authority, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		a, err := netip.ParseAddr(inner)
		if !ok || err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("bad echo authority %q", authority)
		}
		return inner, nil
	}
	if authority == "" || strings.ContainsAny(authority, ":[]/@ ") {
		return "", fmt.Errorf("bad echo authority %q: want a host without a port", authority)
	}
	return authority, nil
}

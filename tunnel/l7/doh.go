package l7

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/miekg/dns"
	"golang.org/x/net/http2/hpack"
)

// DNS-over-HTTPS (RFC 8484) as carried on the tunnel: a POST of one DNS message in
// wire format, answered by one DNS message in wire format.
const (
	DNSPath      = "/dns-query"
	DNSMediaType = "application/dns-message"

	DNSHeaderLen  = 12
	MaxDNSMessage = 65535 // a DNS message's length is 16 bits, even over TCP
)

// ErrBadQuery is returned by Client.ResolveDNS for a query that cannot be a DNS
// message (shorter than a header, or longer than 65535 bytes).
var ErrBadQuery = errors.New("l7: not a DNS message")

var errDNSTooLarge = errors.New("DNS message longer than 65535 bytes")

// ResolveDNS resolves query, a DNS message in wire format, with the resolver of a
// publisher of app appID: it is sent to the PoP as a DNS-over-HTTPS request (RFC
// 8484, POST DNSPath) on the tunnel's connection, and the publisher's answer comes
// back in wire format, unchanged but for its ID, which is 0: the query goes with
// ID 0 (a copy is zeroed if needed) and the caller restores its own. Errors are
// Open's: ErrNotConnected at once while the tunnel is down, *RefusedError when the
// PoP or publisher refuses (400 malformed query, 403 denied by policy, 503 no
// publisher of the app online, 502 resolver failed, 504 resolver or publisher
// timed out). ctx bounds the whole exchange.
func (c *Client) ResolveDNS(ctx context.Context, appID string, query []byte) ([]byte, error) {
	if len(query) < DNSHeaderLen || len(query) > MaxDNSMessage {
		return nil, fmt.Errorf("l7: resolve for app %s: %d-byte query: %w", appID, len(query), ErrBadQuery)
	}
	tc := c.current(ctx)
	if tc == nil || !tc.cc.CanTakeNewRequest() {
		return nil, ErrNotConnected
	}
	if binary.BigEndian.Uint16(query) != 0 {
		query = bytes.Clone(query)
		binary.BigEndian.PutUint16(query, 0)
	}
	answer, err := tc.cc.ResolveDNS(ctx, c.popList.current(), appID, query)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.requestError(tc, "resolve for app "+appID, err)
	}
	return answer, nil
}

// ResolveDNS sends query (wire format) for app appID to authority as a DoH POST
// on a new stream and returns the answer, or a *RefusedError. ctx bounds the
// whole exchange; once it is done the stream is reset.
func (cc *ClientConn) ResolveDNS(ctx context.Context, authority, appID string, query []byte) ([]byte, error) {
	var answer []byte
	err := cc.post(ctx, []hpack.HeaderField{
		{Name: ":method", Value: http.MethodPost},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: authority},
		{Name: ":path", Value: DNSPath},
		{Name: "zt-app", Value: appID},
		{Name: "content-type", Value: DNSMediaType},
		{Name: "accept", Value: DNSMediaType},
		{Name: "content-length", Value: strconv.Itoa(len(query))},
	}, query, func(status int, h http.Header, body io.Reader) (err error) {
		answer, err = readDNSAnswer(status, h, body)
		return err
	})
	return answer, err
}

// post sends a request with a small body on a new stream and hands the
// response to read. ctx bounds the whole exchange; once it is done the stream
// is reset.
func (cc *ClientConn) post(ctx context.Context, fields []hpack.HeaderField, body []byte,
	read func(status int, h http.Header, body io.Reader) error) error {
	s, err := cc.openStream(ctx, fields)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	// A server may answer as soon as it has read the request and reset the
	// rest of it (RST_STREAM NO_ERROR) before our END_STREAM: a failed write
	// matters only if no answer comes.
	_, werr := s.Write(body)
	if werr == nil {
		werr = s.CloseWrite()
	}
	status, h, err := s.awaitResponse(ctx)
	if err == nil {
		err = read(status, h, s)
	} else if werr != nil {
		err = werr
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readDNSAnswer reads a DoH answer, or turns a refusal into a *RefusedError.
func readDNSAnswer(status int, h http.Header, body io.Reader) ([]byte, error) {
	if status != http.StatusOK {
		return nil, &RefusedError{Status: status, Reason: h.Get(HeaderReason)}
	}
	if !isDNSMediaType(h.Get("Content-Type")) {
		return nil, fmt.Errorf("answer of type %q, want %s", h.Get("Content-Type"), DNSMediaType)
	}
	n, err := contentLength(h)
	if err != nil {
		return nil, err
	}
	answer, err := readDNSBody(body, n)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if len(answer) < DNSHeaderLen {
		return nil, fmt.Errorf("%d-byte answer is not a DNS message", len(answer))
	}
	return answer, nil
}

// readDNSBody reads one DNS message of declared length n (-1 if unknown),
// refusing to buffer more than the largest one.
func readDNSBody(r io.Reader, n int64) ([]byte, error) {
	return readBody(r, n, MaxDNSMessage, errDNSTooLarge)
}

// readBody reads a body of declared length n (-1 if unknown), failing with
// tooLarge rather than buffer more than limit bytes.
func readBody(r io.Reader, n int64, limit int, tooLarge error) ([]byte, error) {
	if n > int64(limit) {
		return nil, tooLarge
	}
	if n >= 0 {
		// Exactly n bytes: HTTP/2 fails a body whose DATA disagrees with its
		// content-length.
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, tooLarge
	}
	return b, nil
}

// WriteDNSAnswer answers a DoH request.
func WriteDNSAnswer(w http.ResponseWriter, answer []byte) {
	h := w.Header()
	h.Set("Content-Type", DNSMediaType)
	h.Set("Content-Length", fmt.Sprint(len(answer)))
	w.WriteHeader(http.StatusOK)
	w.Write(answer)
}

func isDNSMediaType(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && mt == DNSMediaType
}

// IsDNSQuery reports whether r is a DoH query, which the PoP and the publisher
// serve. GET queries (base64url in the URL) are not used on the tunnel.
func IsDNSQuery(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL != nil && r.URL.Path == DNSPath
}

// DNSQuery is a parsed DoH request.
type DNSQuery struct {
	AppID string
	QName string // the question's name, canonical: lower case, with the final dot
	Body  []byte // the query in wire format, as sent
}

// ParseDNSRequest reads and checks a DoH request on the serving side. On failure
// it returns the status to refuse the request with.
func ParseDNSRequest(r *http.Request) (DNSQuery, int, error) {
	q := DNSQuery{AppID: r.Header.Get(HeaderApp)}
	if q.AppID == "" {
		return q, http.StatusBadRequest, errors.New("no " + HeaderApp + " header")
	}
	if ct := r.Header.Get("Content-Type"); !isDNSMediaType(ct) {
		return q, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q, want %s", ct, DNSMediaType)
	}
	body, err := readDNSBody(r.Body, r.ContentLength)
	switch {
	case errors.Is(err, errDNSTooLarge):
		return q, http.StatusRequestEntityTooLarge, err
	case err != nil:
		return q, http.StatusBadRequest, fmt.Errorf("read query: %w", err)
	}
	q.Body = body
	q.QName, err = parseDNSQuery(body)
	if err != nil {
		return q, http.StatusBadRequest, err
	}
	return q, http.StatusOK, nil
}

// parseDNSQuery checks that msg is a standard query with exactly one question
// and returns the question's name in canonical form.
func parseDNSQuery(msg []byte) (string, error) {
	if len(msg) < DNSHeaderLen {
		return "", fmt.Errorf("%d-byte query is not a DNS message", len(msg))
	}
	var m dns.Msg
	if err := m.Unpack(msg); err != nil {
		return "", fmt.Errorf("malformed DNS query: %w", err)
	}
	switch {
	case m.Response:
		return "", errors.New("DNS message is a response, not a query")
	case m.Opcode != dns.OpcodeQuery:
		return "", fmt.Errorf("DNS opcode %d, want 0 (QUERY)", m.Opcode)
	case len(m.Question) != 1:
		return "", fmt.Errorf("DNS query with %d questions, want 1", len(m.Question))
	}
	return dns.CanonicalName(m.Question[0].Name), nil
}

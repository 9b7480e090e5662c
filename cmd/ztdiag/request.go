package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/cmd/internal/cli"
)

const requestUsage = `usage: ztdiag -r URL [--timeout 30s] [--insecure] [--json]
--timeout: give up after this long; --insecure: do not verify the certificate
timing of one GET of URL made from this machine, as any application's request,
so the agent steers it as it would theirs: how the agent decides it, then name
lookup, connect, TLS handshake, first byte, total and speed. The body is read
and dropped (at most 1 GiB).
flags:
`

// requestTiming is what -r measured; durations are from the request's start.
type requestTiming struct {
	URL       string        `json:"url"`
	Status    string        `json:"status,omitempty"`
	Steering  string        `json:"steering"`
	App       string        `json:"app,omitempty"`
	Remote    string        `json:"remote,omitempty"`
	Lookup    time.Duration `json:"lookup_ns,omitempty"`
	Connect   time.Duration `json:"connect_ns,omitempty"`
	TLS       time.Duration `json:"tls_ns,omitempty"`
	FirstByte time.Duration `json:"first_byte_ns,omitempty"`
	Total     time.Duration `json:"total_ns"`
	Bytes     int64         `json:"bytes"`
	BytesPerS float64       `json:"bytes_per_second,omitempty"`
	Error     string        `json:"error,omitempty"`
	traceMu   sync.Mutex
	start     time.Time
	dnsStart  time.Time
	connStart time.Time
	tlsStart  time.Time
}

const maxRequestBody = 1 << 30

// requestOptions are -r's flags, parsed with ztdiag's own (they follow
// -r URL on the command line).
type requestOptions struct {
	timeout  time.Duration
	insecure bool
}

// cmdRequest is nsdiag's -r.
func cmdRequest(ctx context.Context, e *env, rawURL string, o requestOptions, args []string) error {
	timeout, insecure := o.timeout, o.insecure
	if err := e.noArgs("-r", requestUsage, args); err != nil {
		return err
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return cli.Usagef("-r %q: want an http:// or https:// URL", rawURL)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p, _ := strconv.ParseUint(port, 10, 16)
	decision, err := e.c.Match(ctx, ctlapi.MatchRequest{Host: u.Hostname(), Port: uint16(p), Proto: "tcp"})
	if err != nil {
		return err
	}
	rt := &requestTiming{URL: u.String(), Steering: actionTitle(decision.Action), App: decision.App}
	reqErr := rt.do(ctx, u, timeout, insecure)
	if reqErr != nil {
		rt.Error = reqErr.Error()
	}
	if e.json {
		if err := e.printJSON(rt); err != nil {
			return err
		}
	} else {
		rt.print(e)
	}
	if reqErr != nil {
		return fmt.Errorf("request %s: %w", u, reqErr)
	}
	return nil
}

// do makes the request with a transport of its own (no proxy, no
// connection reuse), so every phase is measured.
func (rt *requestTiming) do(ctx context.Context, u *url.URL, timeout time.Duration, insecure bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}}
	defer tr.CloseIdleConnections()
	trace := &httptrace.ClientTrace{
		DNSStart:          func(httptrace.DNSStartInfo) { rt.mark(&rt.dnsStart, nil) },
		DNSDone:           func(httptrace.DNSDoneInfo) { rt.mark(&rt.dnsStart, &rt.Lookup) },
		ConnectStart:      func(string, string) { rt.mark(&rt.connStart, nil) },
		ConnectDone:       func(string, string, error) { rt.mark(&rt.connStart, &rt.Connect) },
		TLSHandshakeStart: func() { rt.mark(&rt.tlsStart, nil) },
		TLSHandshakeDone:  func(tls.ConnectionState, error) { rt.mark(&rt.tlsStart, &rt.TLS) },
		GotConn: func(ci httptrace.GotConnInfo) {
			rt.traceMu.Lock()
			rt.Remote = ci.Conn.RemoteAddr().String()
			rt.traceMu.Unlock()
		},
		GotFirstResponseByte: func() {
			rt.traceMu.Lock()
			rt.FirstByte = time.Since(rt.start)
			rt.traceMu.Unlock()
		},
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	rt.start = time.Now()
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // time this URL, not where it sends us
	}}).Do(req)
	if err != nil {
		rt.Total = time.Since(rt.start)
		return err
	}
	defer resp.Body.Close()
	rt.Status = resp.Status
	rt.Bytes, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxRequestBody))
	rt.Total = time.Since(rt.start)
	if secs := rt.Total.Seconds(); secs > 0 {
		rt.BytesPerS = float64(rt.Bytes) / secs
	}
	return err
}

// mark records a phase's start (d nil) or its length since then.
func (rt *requestTiming) mark(start *time.Time, d *time.Duration) {
	rt.traceMu.Lock()
	defer rt.traceMu.Unlock()
	if d == nil {
		*start = time.Now()
		return
	}
	if !start.IsZero() {
		*d = time.Since(*start)
	}
}

func (rt *requestTiming) print(e *env) {
	rt.traceMu.Lock()
	defer rt.traceMu.Unlock()
	steering := rt.Steering
	if rt.App != "" {
		steering += " (app " + rt.App + ")"
	}
	phase := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return ms(d)
	}
	fmt.Fprintf(e.out, "URL:: %s.\nSteering:: %s.\n", rt.URL, steering)
	if rt.Status != "" {
		fmt.Fprintf(e.out, "Status:: %s.\n", rt.Status)
	}
	if rt.Error != "" {
		fmt.Fprintf(e.out, "Error:: %s.\n", rt.Error)
	}
	fmt.Fprintf(e.out, "Remote address:: %s.\nName lookup:: %s.\nConnect:: %s.\nTLS handshake:: %s.\nFirst byte:: %s.\nTotal:: %s.\nSize:: %d bytes.\nSpeed:: %.1f KB/s.\n",
		orDash(rt.Remote), phase(rt.Lookup), phase(rt.Connect), phase(rt.TLS), phase(rt.FirstByte), ms(rt.Total), rt.Bytes, rt.BytesPerS/1000)
}

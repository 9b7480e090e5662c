package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/ztagent/ztagent/platform"
	"github.com/ztagent/ztagent/steering"
)

// probeTimeout bounds one probe of the network (a DNS query to one resolver,
// a beacon's whole HTTPS exchange): a network that does not answer this fast
// is taken for one that does not answer.
const probeTimeout = 2 * time.Second

// netProber probes the network the machine is on, never through the agent:
// its sockets bypass the agent's routes (platform.BypassDialer), its DNS
// questions go to the OS's own resolvers, and no redirect is followed.
type netProber struct {
	// upstreams returns the OS's own resolvers, as the agent saved them.
	upstreams func() []netip.AddrPort
	timeout   time.Duration
}

// onPrem is an onPremProbe.
func (n netProber) onPrem(ctx context.Context, o *steering.OnPremDetection) (bool, string) {
	if o.DNS != nil {
		return n.onPremDNS(ctx, o.DNS)
	}
	return n.onPremBeacon(ctx, o.Beacon)
}

// onPremDNS asks the OS's resolvers for the name: on premises when the
// first that answers gives the address.
func (n netProber) onPremDNS(ctx context.Context, d *steering.OnPremDNS) (bool, string) {
	want, err := netip.ParseAddr(d.Address)
	if err != nil {
		return false, fmt.Sprintf("dns.address %q: %v", d.Address, err)
	}
	addrs, from, err := n.resolve(ctx, d.Name, want.Is6())
	if err != nil {
		return false, fmt.Sprintf("%s: %v", d.Name, err)
	}
	if slices.Contains(addrs, want.Unmap()) {
		return true, fmt.Sprintf("%s is %s (resolver %s)", d.Name, want, from)
	}
	return false, fmt.Sprintf("%s is %v, not %s (resolver %s)", d.Name, addrs, want, from)
}

// onPremBeacon connects to the beacon: on premises when its certificate is
// the pinned one and it answers HTTP.
func (n netProber) onPremBeacon(ctx context.Context, b *steering.OnPremBeacon) (bool, string) {
	u, err := steering.ParseBeaconURL(b.URL)
	if err != nil {
		return false, fmt.Sprintf("beacon %s: %v", b.URL, err)
	}
	pin, err := steering.ParseFingerprint(b.SHA256)
	if err != nil {
		return false, fmt.Sprintf("beacon %s: %v", b.URL, err)
	}
	addr, err := n.addrOf(ctx, u.Hostname())
	if err != nil {
		return false, fmt.Sprintf("beacon %s: %v", b.URL, err)
	}
	tlsConf := &tls.Config{
		ServerName: u.Hostname(),
		// The pin is the trust: the beacon's certificate is usually
		// self-signed, and a CA-signed one proves nothing about where the
		// machine is.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate")
			}
			if got := sha256.Sum256(cs.PeerCertificates[0].Raw); got != pin {
				return fmt.Errorf("%w: its SHA-256 is %s", errNotPinned, hex.EncodeToString(got[:]))
			}
			return nil
		},
	}
	if _, err := n.get(ctx, b.URL, addr, u.Port(), "443", tlsConf); err != nil {
		if errors.Is(err, errNotPinned) {
			return false, fmt.Sprintf("beacon %s (%s) presented another certificate: %v", b.URL, addr, err)
		}
		return false, fmt.Sprintf("beacon %s (%s): %v", b.URL, addr, err)
	}
	return true, fmt.Sprintf("beacon %s (%s) presented the pinned certificate", b.URL, addr)
}

var errNotPinned = errors.New("not the pinned certificate")

// get sends one GET for rawURL to addr (port, or def when ""), on a socket
// that bypasses the agent's routes, without following redirects or keeping
// the connection, and returns the answer with its body closed.
func (n netProber) get(ctx context.Context, rawURL string, addr netip.Addr, port, def string, tlsConf *tls.Config) (*http.Response, error) {
	if port == "" {
		port = def
	}
	dialer := platform.BypassDialer(n.timeout)
	client := &http.Client{
		Timeout: n.timeout,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, net.JoinHostPort(addr.String(), port))
			},
			TLSClientConfig:   tlsConf,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp, nil
}

// addrOf returns host's address: host itself when it is one, else the
// first the OS's resolvers give.
func (n netProber) addrOf(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	addrs, _, err := n.resolve(ctx, host, false)
	if err == nil && len(addrs) == 0 {
		addrs, _, err = n.resolve(ctx, host, true)
	}
	switch {
	case err != nil:
		return netip.Addr{}, err
	case len(addrs) == 0:
		return netip.Addr{}, errors.New("the name has no address")
	}
	return addrs[0], nil
}

// resolve asks the OS's resolvers in turn for name's A (or AAAA) records and
// returns those of the first that answers, and which one it was.
func (n netProber) resolve(ctx context.Context, name string, v6 bool) ([]netip.Addr, netip.AddrPort, error) {
	ups := n.upstreams()
	if len(ups) == 0 {
		return nil, netip.AddrPort{}, errors.New("no resolvers")
	}
	qtype := dns.TypeA
	if v6 {
		qtype = dns.TypeAAAA
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "udp", Timeout: n.timeout, Dialer: platform.BypassDialer(n.timeout)}
	var errs []error
	for _, up := range ups {
		r, _, err := c.ExchangeContext(ctx, q, up.String())
		if err != nil {
			errs = append(errs, fmt.Errorf("resolver %s: %w", up, err))
			continue
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			errs = append(errs, fmt.Errorf("resolver %s: %s", up, dns.RcodeToString[r.Rcode]))
			continue
		}
		var addrs []netip.Addr
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				a, _ := netip.AddrFromSlice(rr.A.To4())
				addrs = append(addrs, a)
			case *dns.AAAA:
				a, _ := netip.AddrFromSlice(rr.AAAA)
				addrs = append(addrs, a.Unmap())
			}
		}
		return addrs, up, nil
	}
	return nil, netip.AddrPort{}, errors.Join(errs...)
}

// captive asks rawURL, which answers 204 No Content on an open network:
// any other answer is a captive portal's. A check that gets no answer finds
// no portal (the network is down, or the name is unknown).
func (n netProber) captive(ctx context.Context, rawURL string) (bool, string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false, fmt.Sprintf("captive check %s: %v", rawURL, err)
	}
	addr, err := n.addrOf(ctx, u.Hostname())
	if err != nil {
		return false, fmt.Sprintf("captive check %s: %v", rawURL, err)
	}
	resp, err := n.get(ctx, rawURL, addr, u.Port(), "80", nil)
	if err != nil {
		return false, fmt.Sprintf("captive check %s (%s): %v", rawURL, addr, err)
	}
	if resp.StatusCode == http.StatusNoContent {
		return false, fmt.Sprintf("captive check %s (%s) answered 204", rawURL, addr)
	}
	why := fmt.Sprintf("captive check %s (%s) answered %s", rawURL, addr, resp.Status)
	if loc := resp.Header.Get("Location"); loc != "" {
		why += " to " + loc
	}
	return true, why
}

package ddns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// ErrNameTaken is returned (wrapped) when the name exists in the zone but is
// not this device's: another device's, or a static record.
var ErrNameTaken = errors.New("name held by another owner")

// ErrUnsigned is returned (wrapped) when the server claims success without a
// TSIG on its answer: nothing proves the update was applied.
var ErrUnsigned = errors.New("answer not signed")

// RcodeError is the server's refusal of an update: its rcode (REFUSED,
// NOTAUTH, NXRRSET, …) and, when its TSIG says why, the TSIG error (BADSIG,
// BADKEY, BADTIME).
type RcodeError struct {
	Op        string // "register" or "remove"
	Name      string
	Rcode     int
	TSIGError uint16 // 0 when the answer carries none
}

func (e *RcodeError) Error() string {
	s := fmt.Sprintf("ddns: %s %s: server answered %s", e.Op, e.Name, rcodeName(e.Rcode))
	if e.TSIGError != 0 {
		s += fmt.Sprintf(" (TSIG %s)", rcodeName(int(e.TSIGError)))
	}
	return s
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// ownerRR is the TXT record that marks the name as this device's.
func (c *Client) ownerRR() dns.RR {
	return &dns.TXT{
		Hdr: dns.RR_Header{Name: c.cfg.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: c.ttl},
		Txt: []string{"ztagent-owner=" + c.cfg.Owner},
	}
}

// addressRRs are the A and AAAA records for addrs.
func (c *Client) addressRRs(addrs []netip.Addr) ([]dns.RR, error) {
	if len(addrs) == 0 {
		return nil, errors.New("ddns: no address to register")
	}
	rrs := make([]dns.RR, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		hdr := dns.RR_Header{Name: c.cfg.Name, Class: dns.ClassINET, Ttl: c.ttl}
		switch {
		case !a.IsValid() || a.Zone() != "":
			return nil, fmt.Errorf("ddns: address %q: not a plain IP address", a)
		case a.Is4():
			hdr.Rrtype = dns.TypeA
			rrs = append(rrs, &dns.A{Hdr: hdr, A: a.AsSlice()})
		default:
			hdr.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return rrs, nil
}

// deleteSets are the RRsets a registration replaces and a removal deletes
// (RemoveRRset ignores the rdata).
func (c *Client) deleteSets(withOwner bool) []dns.RR {
	sets := []dns.RR{
		&dns.ANY{Hdr: dns.RR_Header{Name: c.cfg.Name, Rrtype: dns.TypeA}},
		&dns.ANY{Hdr: dns.RR_Header{Name: c.cfg.Name, Rrtype: dns.TypeAAAA}},
	}
	if withOwner {
		sets = append(sets, &dns.ANY{Hdr: dns.RR_Header{Name: c.cfg.Name, Rrtype: dns.TypeTXT}})
	}
	return sets
}

// Register makes addrs the name's only A and AAAA records. It claims the name
// when it does not exist, replaces the addresses when this device owns it,
// and fails with ErrNameTaken when someone else does.
func (c *Client) Register(ctx context.Context, addrs []netip.Addr) error {
	rrs, err := c.addressRRs(addrs)
	if err != nil {
		return err
	}
	// Claim: the name must not exist; add the owner and the addresses.
	claim := c.newUpdate()
	claim.NameNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: c.cfg.Name}}})
	claim.Insert(append([]dns.RR{c.ownerRR()}, rrs...))
	err = c.send(ctx, "register", claim)
	var rc *RcodeError
	if !errors.As(err, &rc) || rc.Rcode != dns.RcodeYXDomain {
		return err
	}
	// Replace: the name exists; it must be ours.
	replace := c.newUpdate()
	replace.Used([]dns.RR{c.ownerRR()})
	replace.RemoveRRset(c.deleteSets(false))
	replace.Insert(append([]dns.RR{c.ownerRR()}, rrs...))
	err = c.send(ctx, "register", replace)
	if errors.As(err, &rc) && rc.Rcode == dns.RcodeNXRrset {
		return fmt.Errorf("%w: %w", err, ErrNameTaken)
	}
	return err
}

// Remove deletes the name's A, AAAA and owner records if this device owns
// the name; a name that is absent or someone else's is left alone, and that
// is not an error.
func (c *Client) Remove(ctx context.Context) error {
	m := c.newUpdate()
	m.Used([]dns.RR{c.ownerRR()})
	m.RemoveRRset(c.deleteSets(true))
	err := c.send(ctx, "remove", m)
	var rc *RcodeError
	if errors.As(err, &rc) && rc.Rcode == dns.RcodeNXRrset {
		c.log.Debug("nothing of ours to remove", zap.String("name", c.cfg.Name))
		return nil
	}
	return err
}

func (c *Client) newUpdate() *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(c.cfg.Zone)
	return m
}

// send exchanges m and turns the answer into an error: nil only for a
// NOERROR answer whose TSIG verified.
func (c *Client) send(ctx context.Context, op string, m *dns.Msg) error {
	resp, err := c.exchange(ctx, m)
	if resp != nil && (resp.Rcode != dns.RcodeSuccess || tsigError(resp) != 0) {
		// A refusal is reported whatever its signature: a server that
		// rejects our key cannot sign with it.
		return &RcodeError{Op: op, Name: c.cfg.Name, Rcode: resp.Rcode, TSIGError: tsigError(resp)}
	}
	if err != nil {
		return fmt.Errorf("ddns: %s %s: %w", op, c.cfg.Name, err)
	}
	if resp.IsTsig() == nil {
		return fmt.Errorf("ddns: %s %s: %w", op, c.cfg.Name, ErrUnsigned)
	}
	return nil
}

func tsigError(m *dns.Msg) uint16 {
	if t := m.IsTsig(); t != nil {
		return t.Error
	}
	return 0
}

// exchanger signs and sends one message and returns the answer, its TSIG
// verified when it has one (the answer comes back with the error when the
// verification fails).
type exchanger func(ctx context.Context, m *dns.Msg) (*dns.Msg, error)

// exchangeTimeout bounds one exchange (UDP, then TCP if truncated).
const exchangeTimeout = 5 * time.Second

func newExchanger(server, keyName, secret, algorithm string) exchanger {
	secrets := map[string]string{keyName: secret}
	udp := &dns.Client{Net: "udp", TsigSecret: secrets, Timeout: exchangeTimeout}
	tcp := &dns.Client{Net: "tcp", TsigSecret: secrets, Timeout: exchangeTimeout}
	return func(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
		// Sending takes the TSIG out of m again: sign before each.
		m.SetTsig(keyName, algorithm, 300, time.Now().Unix())
		resp, _, err := udp.ExchangeContext(ctx, m, server)
		if resp != nil && resp.Truncated {
			m.SetTsig(keyName, algorithm, 300, time.Now().Unix())
			resp, _, err = tcp.ExchangeContext(ctx, m, server)
		}
		return resp, err
	}
}

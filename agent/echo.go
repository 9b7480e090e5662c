package agent

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/steering"
	"github.com/ztagent/ztagent/tunnel/l7"
	"github.com/ztagent/ztagent/tunnel/netstack"
)

// ICMP echo (ping) to a stub address or a steered app's address is carried
// through the L7 tunnel: a publisher of the app pings the real host, and the
// agent writes an echo reply into the TUN device when, and only when, that
// host's reply comes back, so ping's figures are the real path's. An echo the
// agent cannot carry (not steered, tunnel down, suspended, over the limits)
// gets no reply; one the PoP or the publisher refuses gets an ICMP
// destination unreachable. Nothing here ever answers on a host's behalf.

const (
	// echoTimeout bounds an echo's round trip through the tunnel; the
	// publisher gives up on the host well before (5 s).
	echoTimeout = 10 * time.Second
	// maxEchoesInFlight and the token bucket (echoRate per second, up to
	// echoBurst at once) bound a flood of pings: each echo in flight is a
	// goroutine and a stream. Echoes over either limit are dropped and
	// counted.
	maxEchoesInFlight = 128
	echoRate          = 100
	echoBurst         = 100
)

// echoer carries echoes. It is usable once start has handed it the tunnel,
// and close waits for every echo it admitted.
type echoer struct {
	mu       sync.Mutex
	client   *l7.Client // nil until start and after close
	tokens   float64
	last     time.Time
	inFlight int
	wg       sync.WaitGroup

	carried, answered, unanswered, refused, limited, notSteered atomic.Int64
}

func (e *echoer) start(c *l7.Client) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.client, e.tokens, e.last = c, echoBurst, time.Now()
}

// close stops admitting echoes and waits for those in flight, which end with
// the parts' context.
func (e *echoer) close() error {
	e.mu.Lock()
	e.client = nil
	e.mu.Unlock()
	e.wg.Wait()
	return nil
}

// admit takes a token and an in-flight slot and returns the tunnel to carry
// the echo on; nil when the echo must be dropped (limited, or not started).
func (e *echoer) admit(now time.Time) *l7.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client == nil {
		e.limited.Add(1)
		return nil
	}
	if d := now.Sub(e.last); d > 0 {
		e.tokens = min(echoBurst, e.tokens+d.Seconds()*echoRate)
		e.last = now
	}
	if e.tokens < 1 || e.inFlight >= maxEchoesInFlight {
		e.limited.Add(1)
		return nil
	}
	e.tokens--
	e.inFlight++
	e.wg.Add(1)
	return e.client
}

func (e *echoer) done() {
	e.mu.Lock()
	e.inFlight--
	e.mu.Unlock()
	e.wg.Done()
}

func (e *echoer) status() ctlapi.PingStatus {
	return ctlapi.PingStatus{
		Carried: e.carried.Load(), Answered: e.answered.Load(), Unanswered: e.unanswered.Load(),
		Refused: e.refused.Load(), Limited: e.limited.Load(), NotSteered: e.notSteered.Load(),
	}
}

// handleEcho is the userspace stack's EchoHandler, on the TUN reader
// goroutine: it decides the echo and hands a steered one to a goroutine.
func (p *parts) handleEcho(e netstack.Echo) {
	d, host := p.decideEcho(e.Dst)
	if d.Action != steering.L7 && d.Action != steering.Block {
		// Direct (an exception, no app, an unknown stub) or a tunnel that
		// cannot carry it: a real address is not pinged from here, and a
		// stub has no host to ping.
		p.echo.notSteered.Add(1)
		p.log.Debug("ping not steered", zap.Stringer("dst", e.Dst), zap.String("reason", d.Reason))
		return
	}
	// Refusals count against the limits too: each one writes a packet.
	c := p.echo.admit(time.Now())
	if c == nil {
		return
	}
	if d.Action == steering.Block {
		p.echo.done()
		p.echo.refused.Add(1)
		p.stack.RefuseEcho(e, netstack.ErrProhibited)
		return
	}
	go func() {
		defer p.echo.done()
		p.carryEcho(c, e, host, d.App.ID)
	}()
}

// decideEcho maps the pinged address to a steering decision and the host to
// ask the PoP for, as decide does for flows but without a port.
func (p *parts) decideEcho(dst netip.Addr) (steering.Decision, string) {
	snap := p.snap.Load()
	dst = dst.Unmap()
	name, known := p.nameOf(snap, dst)
	if !known {
		return steering.Decision{Reason: errUnknownStub.Error()}, ""
	}
	host := dst.String()
	if name != "" {
		host = name
	}
	return snap.MatchEcho(dst, name), host
}

// carryEcho sends one echo through the tunnel and answers the client with the
// real reply, an ICMP error for a refusal, or nothing.
func (p *parts) carryEcho(c *l7.Client, e netstack.Echo, host, appID string) {
	ctx, cancel := context.WithTimeout(p.ctx, echoTimeout)
	defer cancel()
	log := p.log.With(zap.Stringer("dst", e.Dst), zap.String("host", host), zap.String("app", appID), zap.Uint16("seq", e.Seq))
	p.echo.carried.Add(1)
	rep, err := c.Echo(ctx, l7.EchoRequest{Host: host, AppID: appID, IPv6: e.Dst.Is6(), Data: e.Data})
	if err == nil {
		if err = p.stack.ReplyEcho(e, rep.Data); err == nil {
			p.echo.answered.Add(1)
			log.Debug("ping answered", zap.Stringer("pinged", rep.Addr), zap.Duration("publisher_rtt", rep.RTT))
			return
		}
	}
	if refusal := echoRefusal(err); refusal != nil {
		p.echo.refused.Add(1)
		p.stack.RefuseEcho(e, refusal)
	} else {
		p.echo.unanswered.Add(1)
	}
	log.Debug("ping not answered", zap.Error(err))
}

// echoRefusal maps a refused echo to the ICMP error the client gets: policy
// is "administratively prohibited"; a host no publisher can resolve or reach,
// or an app with no publisher online, is "host unreachable". Anything else
// (no reply in time, tunnel down) gets no answer, as a lost packet.
func echoRefusal(err error) error {
	var re *l7.RefusedError
	if !errors.As(err, &re) {
		return nil
	}
	switch re.Status {
	case http.StatusForbidden:
		return netstack.ErrProhibited
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return netstack.ErrHostUnreachable
	}
	return nil
}

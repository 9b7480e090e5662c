package publisher

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// As net.Dialer does: the fallback family starts this long after the
// preferred one unless it failed first (RFC 6555), and each address of a
// family gets an equal share of the time left, but at least minDialShare.
const (
	fallbackDelay = 300 * time.Millisecond
	minDialShare  = 2 * time.Second
)

// resolve returns host's addresses, a literal as it is: with the configured
// resolver through the cache, otherwise with the system's resolver.
func (p *Publisher) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if p.names != nil {
		addrs, err := p.names.lookup(ctx, host)
		if err != nil {
			return nil, err
		}
		return preferReachable(addrs), nil
	}
	addrs, err := p.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, errors.New("no address")
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// preferReachable puts the IPv4 addresses first when there is no route to the
// first IPv6 one (RFC 6724 rule 1, as Go's resolver sorts); addrs has the IPv6
// addresses first.
func preferReachable(addrs []netip.Addr) []netip.Addr {
	if !addrs[0].Is6() || !addrs[len(addrs)-1].Is4() {
		return addrs
	}
	// Connecting a UDP socket sends nothing; it fails without a route.
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrs[0], 9)))
	if err == nil {
		c.Close()
		return addrs
	}
	i := 0
	for i < len(addrs) && addrs[i].Is6() {
		i++
	}
	return append(append(make([]netip.Addr, 0, len(addrs)), addrs[i:]...), addrs[:i]...)
}

// dialAddrs connects to port at one of addrs, the first address's family first
// and the other family in parallel after fallbackDelay or a failure (RFC 6555),
// each family's addresses one after another. The error is the first family's.
func (p *Publisher) dialAddrs(ctx context.Context, network string, addrs []netip.Addr, port uint16) (net.Conn, error) {
	var primaries, fallbacks []netip.AddrPort
	for _, a := range addrs {
		if a.Is4() == addrs[0].Is4() {
			primaries = append(primaries, netip.AddrPortFrom(a, port))
		} else {
			fallbacks = append(fallbacks, netip.AddrPortFrom(a, port))
		}
	}
	if len(fallbacks) == 0 {
		return p.dialSerial(ctx, network, primaries)
	}
	ctx, cancel := context.WithCancel(ctx)
	type result struct {
		c       net.Conn
		err     error
		primary bool
	}
	results := make(chan result, 2)
	var wg sync.WaitGroup
	defer func() {
		// Stop the loser and close its connection if it made one anyway.
		cancel()
		wg.Wait()
		for len(results) > 0 {
			if r := <-results; r.c != nil {
				r.c.Close()
			}
		}
	}()
	race := func(addrs []netip.AddrPort, primary bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.dialSerial(ctx, network, addrs)
			results <- result{c, err, primary}
		}()
	}
	race(primaries, true)
	fallback := time.NewTimer(fallbackDelay)
	defer fallback.Stop()
	pending, started := 1, false
	var primaryErr error
	for {
		select {
		case <-fallback.C:
		case r := <-results:
			pending--
			if r.err == nil {
				return r.c, nil
			}
			if r.primary {
				primaryErr = r.err
			}
			if started && pending == 0 {
				return nil, primaryErr
			}
		}
		if !started {
			started = true
			pending++
			race(fallbacks, false)
		}
	}
}

// dialSerial connects to the first of addrs that answers, giving each an equal
// share of the time left (at least minDialShare), and returns the first error.
func (p *Publisher) dialSerial(ctx context.Context, network string, addrs []netip.AddrPort) (net.Conn, error) {
	var firstErr error
	for i, a := range addrs {
		if err := ctx.Err(); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			break
		}
		dctx := ctx
		if deadline, ok := ctx.Deadline(); ok && i < len(addrs)-1 {
			share := max(time.Until(deadline)/time.Duration(len(addrs)-i), minDialShare)
			if share < time.Until(deadline) {
				var cancel context.CancelFunc
				dctx, cancel = context.WithTimeout(ctx, share)
				defer cancel()
			}
		}
		c, err := p.dialer.DialContext(dctx, network, a.String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

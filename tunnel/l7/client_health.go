package l7

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// How the client recovers quickly. A PoP that sends GOAWAY (it is shutting
// down, or draining for a restart) is replaced at once by a new connection,
// while the streams it accepted finish on the old one. A change of the
// device's network, or a wake from sleep (Reconnect), opens a new connection
// before the old one is let go, and checks the old one with a PING answered
// within CheckTimeout, instead of waiting for the keepalive (ReadIdle, then
// pingTimeout: 25 s on a path that died silently while the device slept): a
// path that still works loses no flow, a dead one is left at once.

const (
	// CheckTimeout is how long the PoP has to answer the PING that checks a
	// connection Reconnect replaced (or could not replace).
	CheckTimeout = 2 * time.Second
	// staleSilence is how long a connection may go without a frame before a
	// new stream takes it for dead: the keepalive PINGs after ReadIdle of
	// silence, and the answer takes a round trip.
	staleSilence = ReadIdle + CheckTimeout
	// replaceWait bounds how long a new stream waits for the connection a
	// Reconnect is making before it takes the old one.
	replaceWait = time.Second
	// minGoAwayLife: a connection that gets GOAWAY sooner than this after it
	// was made, right after another such, is replaced after the backoff
	// delay rather than at once.
	minGoAwayLife = time.Second
)

var errLost = errors.New("connection to PoP lost")

// Reconnect opens a new connection to the PoP now, because the path to it may
// have changed or died unnoticed (a network change, a wake from sleep): new
// flows move to the new connection as
// soon as it is up, streams open on the old one finish there unless it does
// not answer a PING within CheckTimeout. If the new connection cannot be made,
// the old one stays if it answers. While the tunnel is down, it retries at
// once. Requests made while one is pending coalesce; why is logged.
func (c *Client) Reconnect(why string) {
	if c.ctx.Err() != nil {
		return // closed
	}
	// From now until the new connection is up, new streams wait for it.
	done := make(chan struct{})
	c.replacing.CompareAndSwap(nil, &done)
	select {
	case c.reconnect <- why:
	default: // one is pending already
	}
}

// endReplacing lets the streams waiting for a Reconnect go on.
func (c *Client) endReplacing() {
	if p := c.replacing.Swap(nil); p != nil {
		close(*p)
	}
}

// takeRequests drops pending requests: the connection about to be made
// answers them.
func (c *Client) takeRequests() {
	select {
	case <-c.reconnect:
	default:
	}
	c.endReplacing()
}

// wait waits d before the next attempt; a Reconnect ends it early. It
// reports false when the client is closed.
func (c *Client) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case why := <-c.reconnect:
		c.endReplacing() // no connection to replace: streams fail at once
		c.log.Info("retrying now", zap.String("why", why))
	case <-c.ctx.Done():
		return false
	}
	return true
}

// current returns the connection new streams open on, nil when down. From a
// Reconnect until its new connection is up, it waits for that (up to
// replaceWait and within ctx): the old one may be on a path that is gone,
// where a stream would hang until the old connection's check fails. A
// connection silent for longer than its keepalive allows is such a one: the
// agent was stopped or the machine slept, and the first stream after the
// wake may come before the agent's clocks have noticed it.
func (c *Client) current(ctx context.Context) *tunnelConn {
	if tc := c.cur.Load(); tc != nil {
		if d := tc.cc.Silence(); d > staleSilence {
			c.Reconnect("connection silent for " + d.Round(time.Second).String())
		}
	}
	if p := c.replacing.Load(); p != nil && c.ctx.Err() == nil {
		t := time.NewTimer(replaceWait)
		defer t.Stop()
		select {
		case <-*p:
		case <-t.C:
			c.log.Info("new connection not up yet: opening on the current one")
		case <-ctx.Done():
		}
	}
	return c.cur.Load()
}

// install makes tc the connection new streams open on.
func (c *Client) install(tc *tunnelConn) {
	c.connects.Add(1)
	c.cur.Store(tc)
	c.setState(StateConnected, nil)
	c.popList.connected()
	c.log.Info("tunnel up", zap.String("pop", tc.addr), zap.Stringer("local", tc.conn.LocalAddr()))
}

// serve runs the current connection, starting with tc, until it is lost
// (errLost), the PoP sends GOAWAY (errGoAway; the connection drains in bg) or
// the client is closed (nil). Requests to reconnect are served here.
func (c *Client) serve(tc *tunnelConn, bg *sync.WaitGroup) error {
	c.install(tc)
	for {
		select {
		case <-tc.cc.Done():
			c.cur.Store(nil)
			tc.cc.Close()
			return errLost
		case <-tc.cc.GoingAway():
			c.cur.Store(nil)
			c.log.Info("PoP is going away: reconnecting; open streams finish on the old connection", zap.String("pop", tc.addr))
			c.retire(tc, bg, false)
			return errGoAway
		case why := <-c.reconnect:
			tc = c.replace(tc, bg, why)
		case <-c.ctx.Done():
			c.cur.Store(nil)
			tc.cc.Close()
			return nil
		}
	}
}

// replace makes a new connection while tc keeps serving, then retires tc and
// returns the new one. If no new connection can be made, tc is checked and
// returned: if it is dead, serve finds out.
func (c *Client) replace(tc *tunnelConn, bg *sync.WaitGroup, why string) *tunnelConn {
	c.log.Info("reconnecting", zap.String("why", why))
	defer c.endReplacing()
	start := time.Now()
	next, err := c.connect()
	if err != nil {
		c.log.Warn("reconnect failed: checking the current connection", zap.String("pop", tc.addr), zap.Error(err))
		c.checkConn(tc, bg)
		return tc
	}
	c.log.Info("reconnected", zap.String("why", why), zap.Duration("took", time.Since(start)))
	c.install(next)
	c.retire(tc, bg, true)
	return next
}

// checkConn pings tc with CheckTimeout in bg, unless a check is under way.
func (c *Client) checkConn(tc *tunnelConn, bg *sync.WaitGroup) {
	if !tc.checking.CompareAndSwap(false, true) {
		return
	}
	bg.Go(func() {
		defer tc.checking.Store(false)
		if err := tc.cc.Ping(CheckTimeout); err != nil {
			c.log.Info("connection to PoP failed its check", zap.Error(err))
		}
	})
}

// retire lets tc's open streams finish and closes it when they have, when it
// dies, or when the client is closed; no new stream opens on it. With check,
// tc must first answer a PING within CheckTimeout (a network change may have
// killed its path, and its streams with it).
func (c *Client) retire(tc *tunnelConn, bg *sync.WaitGroup, check bool) {
	drained := tc.cc.Drain()
	bg.Go(func() {
		defer tc.cc.Close()
		select {
		case <-drained:
			return
		default:
		}
		if check {
			if err := tc.cc.Ping(CheckTimeout); err != nil {
				c.log.Info("previous connection to PoP is dead: its streams end", zap.Error(err))
				return
			}
		}
		select {
		case <-drained:
		case <-tc.cc.Done():
		case <-c.ctx.Done():
		}
	})
}

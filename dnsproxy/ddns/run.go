package ddns

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// removeTimeout bounds the removal Run sends when its context ends.
const removeTimeout = 5 * time.Second

// Run keeps addrs registered under the name until ctx is cancelled: it
// registers at once, sends the registration again every Refresh (so that a
// record lost on the server, e.g. to a restore, comes back), and on
// cancellation removes the records and returns. A failed registration
// (unreachable server, a refusal with its rcode, ErrNameTaken) is logged and
// retried with doubling delays from 1 s up to 5 min or Refresh if shorter.
// Every wait is shortened by a random quarter at most (jitter).
//
// Run returns an error only when addrs cannot be registered at all, or the
// removal's error. It skips the removal when the server never answered, so
// that a clean stop does not wait on a server that is not there. To register
// other addresses, cancel Run and start it again with them.
func (c *Client) Run(ctx context.Context, addrs []netip.Addr) error {
	if _, err := c.addressRRs(addrs); err != nil {
		return err
	}
	log := c.log.With(zap.String("name", c.cfg.Name), zap.Stringers("addrs", addrs))
	registered, answered := false, false
	delay := c.retryMin
	for {
		err := c.Register(ctx, addrs)
		var rc *RcodeError
		answered = answered || err == nil || errors.As(err, &rc)
		if ctx.Err() == nil {
			c.registered.Store(err == nil)
		}
		wait := c.cfg.Refresh
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.Warn("dynamic DNS registration failed", zap.Error(err), zap.Duration("retry_in", delay))
			wait, delay = delay, min(2*delay, c.retryMax)
		case !registered:
			log.Info("dynamic DNS name registered", zap.Duration("refresh", c.cfg.Refresh))
			registered, delay = true, c.retryMin
		default:
			log.Debug("dynamic DNS name refreshed")
			delay = c.retryMin
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			if !answered {
				return nil
			}
			return c.removeOnStop(log)
		case <-t.C:
		}
	}
}

// jitter spreads d over [0.75d, d], so that the devices of a tenant that
// lost their DNS server together do not all come back to it in step.
func jitter(d time.Duration) time.Duration {
	return d - rand.N(d/4+1)
}

func (c *Client) removeOnStop(log *zap.Logger) error {
	c.registered.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	if err := c.Remove(ctx); err != nil {
		log.Warn("dynamic DNS name not removed", zap.Error(err))
		return err
	}
	log.Info("dynamic DNS name removed")
	return nil
}

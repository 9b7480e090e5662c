package l3e

import (
	"context"
	"errors"

	"golang.zx2c4.com/wireguard/tun"
)

// readTUN sends what the device's stack routes into the L3E TUN to the
// association in use, until the TUN is closed or ctx ends.
func (c *Client) readTUN(ctx context.Context) {
	ReadTUN(c.cfg.TUN, func(rec []byte) bool {
		c.fromTUN(rec)
		return ctx.Err() == nil
	}, c.flushHeld)
}

// flushHeld sends what the association written to during the last TUN batch
// has queued (one sendmmsg), at the end of each batch.
func (c *Client) flushHeld() {
	if c.held != nil {
		if err := c.held.Flush(); err != nil {
			c.stats.add(dropSend)
		}
		c.held = nil
	}
}

// ReadTUN reads dev's packets in batches and hands each to handle as a
// record: one free byte (for the record type), then the packet; handle may
// keep nothing of it and returns false to stop. batchDone (if not nil) is
// called after the last packet of each batch. ReadTUN returns when dev
// fails, which means it was closed: too many segments loses part of one GRO
// batch and goes on. The gateway's and the client's TUNs are read this way.
func ReadTUN(dev tun.Device, handle func(rec []byte) bool, batchDone func()) {
	n := max(1, dev.BatchSize())
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	for {
		count, err := dev.Read(bufs, sizes, tunOffset)
		for i := range count {
			if !handle(bufs[i][tunOffset-1 : tunOffset+sizes[i]]) {
				return
			}
		}
		if batchDone != nil {
			batchDone()
		}
		if err != nil && !errors.Is(err, tun.ErrTooManySegments) {
			return
		}
	}
}

// fromTUN sends rec (a free byte, then the packet) through the association
// in use, if the routes allow it.
func (c *Client) fromTUN(rec []byte) {
	s := c.cur.Load()
	if s == nil {
		c.stats.add(dropNoTunnel)
		return
	}
	st := s.tmpl.Load() // never nil: installed associations have one
	pkt := rec[1:]
	fl, err := Classify(pkt)
	switch {
	case err != nil:
		c.stats.add(dropMalformed)
		return
	case fl.Src != st.t.Address.Addr() || !st.filter.Outbound(&fl):
		c.stats.add(dropPolicy)
		return
	}
	ClampMSS(pkt, st.t.MTU)
	rec[0] = TypePacket
	if s.bc != nil && c.held != s.bc {
		c.flushHeld()
		s.bc.Hold()
		c.held = s.bc
	}
	if _, err := s.conn.Write(rec); err != nil {
		c.stats.add(dropSend)
		return
	}
	s.records.Add(1)
	c.stats.packetsOut.Add(1)
	c.stats.bytesOut.Add(uint64(len(pkt)))
}

// toTUN writes the packet buf[tunOffset:][:n] from the gateway to the TUN, if
// it is for the device and the routes allow it.
func (c *Client) toTUN(s *session, buf []byte, n int) {
	st := s.tmpl.Load()
	if cur := c.cur.Load(); st == nil && cur != nil {
		// A new association (re-key) receives before its template: the
		// gateway moved traffic to it first. The one in use has the same.
		st = cur.tmpl.Load()
	}
	pkt := buf[tunOffset : tunOffset+n]
	fl, err := Classify(pkt)
	switch {
	case st == nil:
		c.stats.add(dropNoTunnel)
		return
	case err != nil:
		c.stats.add(dropMalformed)
		return
	case fl.Dst != st.t.Address.Addr() || !st.filter.Inbound(&fl):
		c.stats.add(dropPolicy)
		return
	}
	ClampMSS(pkt, st.t.MTU)
	c.tunw.Write(pkt)
	c.stats.packetsIn.Add(1)
	c.stats.bytesIn.Add(uint64(n))
}

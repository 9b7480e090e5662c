package l3e

import (
	"context"
	"errors"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/ztagent/ztagent/tunnel/l3e/record"
)

// readTUN sends what the device's stack routes into the L3E TUN to the
// association in use, until the TUN is closed or ctx ends: the records of
// one TUN batch are sealed in place and leave in one sendmmsg.
func (c *Client) readTUN(ctx context.Context) {
	ReadTUN(c.cfg.TUN, func(buf []byte, n int) bool {
		c.fromTUN(buf, n)
		return ctx.Err() == nil
	}, c.flushQueue)
}

// flushQueue sends the records of the last TUN batch (only the TUN reader
// calls it).
func (c *Client) flushQueue() {
	if c.qsock == nil {
		return
	}
	c.queue.Flush(c.qsock) // a failure is counted as dropSend
}

// ReadTUN reads dev's packets in batches and hands each to handle: the
// packet is buf[TUNOffset:TUNOffset+n], with room before it for the message
// type and the record header, and after it for the tag; handle may keep
// nothing of it past batchDone and returns false to stop. batchDone (if not
// nil) is called after the last packet of each batch. ReadTUN returns when
// dev fails, which means it was closed: too many segments loses part of one
// GRO batch and goes on. The gateway's and the client's TUNs are read this
// way.
func ReadTUN(dev tun.Device, handle func(buf []byte, n int) bool, batchDone func()) {
	n := max(1, dev.BatchSize())
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	for {
		count, err := dev.Read(bufs, sizes, tunOffset)
		for i := range count {
			if !handle(bufs[i], sizes[i]) {
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

// fromTUN seals the packet buf[tunOffset:][:n] into a record of the
// association in use, if the routes allow it, and queues it.
func (c *Client) fromTUN(buf []byte, n int) {
	s := c.cur.Load()
	if s == nil {
		c.stats.add(dropNoTunnel)
		return
	}
	st := s.tmpl.Load() // never nil: installed associations have one
	pkt := buf[tunOffset : tunOffset+n]
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
	buf[tunOffset-1] = TypePacket
	rec, err := s.seal.Seal(buf[tunOffset-1-record.Prefix:], 1+n)
	if err != nil {
		c.stats.add(dropSend)
		return
	}
	if c.qsock != s.sock {
		c.flushQueue()
		c.qsock = s.sock
	}
	c.queue.Add(s.sock, rec, nil) // a failure is counted as dropSend
	s.records.Add(1)
	c.stats.packetsOut.Add(1)
	c.stats.bytesOut.Add(uint64(n))
}

// toTUN writes pkt, from the gateway, to the TUN if it is for the device
// and the routes allow it.
func (c *Client) toTUN(s *session, pkt []byte) {
	st := s.tmpl.Load()
	if cur := c.cur.Load(); st == nil && cur != nil {
		// A new association (re-key) receives before its template: the
		// gateway moved traffic to it first. The one in use has the same.
		st = cur.tmpl.Load()
	}
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
	c.stats.bytesIn.Add(uint64(len(pkt)))
}

package netstack

import (
	"errors"
	"os"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

const (
	// tunOffset is the headroom left before each packet in TUN buffers. The
	// Linux device writes its virtio-net header there (10 bytes); 16 keeps
	// packets aligned as wireguard-go does.
	tunOffset = 16
	// gsoMaxSize is the largest TCP segment gVisor builds when the device
	// can coalesce (GSO); the writer splits it into MTU-sized packets.
	gsoMaxSize = 1<<16 - 1
	// coalesceSlot is the size of an outbound buffer on a device that
	// coalesces (BatchSize > 1): the device merges the segments of one flow
	// into the first one's buffer, so room beyond the MTU means fewer, larger
	// writes into the kernel.
	coalesceSlot = 32 << 10
)

// eventLoop drains the device's events (a device whose events nobody reads
// blocks its own listener goroutine) and follows MTU changes when the MTU
// was not fixed by Config. It ends when Close closes the device, which
// closes the channel.
func (s *Stack) eventLoop(events <-chan tun.Event) {
	defer s.ioWG.Done()
	for ev := range events {
		if ev&tun.EventUp != 0 {
			s.log.Info("TUN up")
		}
		if ev&tun.EventDown != 0 {
			s.log.Info("TUN down")
		}
		if ev&tun.EventMTUUpdate == 0 || s.cfg.MTU != 0 {
			continue
		}
		m, err := s.dev.MTU()
		if err != nil || m == int(s.link.MTU()) || m < minMTU || m > s.mtu {
			// A larger MTU than at start would overflow the preallocated
			// buffers; the stack keeps its MTU until restarted.
			continue
		}
		s.log.Info("TUN MTU changed", zap.Int("mtu", m))
		s.link.SetMTU(uint32(m))
	}
}

// readLoop reads batches from the TUN and feeds them to the stack through
// GRO, which merges consecutive segments of a TCP flow so that gVisor's TCP
// processes a few large segments instead of many small ones. A Linux TUN
// with virtio-net headers is read directly instead (readRaw), its large
// segments whole.
func (s *Stack) readLoop(batch int) {
	defer s.ioWG.Done()
	if f := rawTUNReader(s.dev, batch, s.log); f != nil {
		s.readRaw(f)
		return
	}
	bufSize := tunOffset + s.mtu
	if batch == 1 {
		bufSize = tunOffset + gsoMaxSize // a device without offloads may exceed our MTU
	} else if m, err := s.dev.MTU(); err == nil && m > s.mtu {
		bufSize = tunOffset + m
	}
	bufs := make([][]byte, batch)
	sizes := make([]int, batch)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	var g gro.GRO
	g.Init(enableGRO)
	failures := 0 // consecutive read errors
	for {
		n, err := s.dev.Read(bufs, sizes, tunOffset)
		if n > 0 {
			s.stats.packetsIn.Add(int64(n))
			if tap := s.tapped(); tap != nil {
				for i := range n {
					tap(false, bufs[i][tunOffset:tunOffset+sizes[i]])
				}
			}
			if d := s.link.dispatcherOrNil(); d != nil {
				g.Dispatcher = d
				for i := range n {
					s.injectInbound(&g, bufs[i][tunOffset:tunOffset+sizes[i]])
				}
				flushGRO(&g)
			}
		}
		if err == nil {
			failures = 0
			continue
		}
		s.stats.readErrs.Add(1)
		switch {
		case errors.Is(err, os.ErrClosed) || s.ctx.Err() != nil:
			return
		case errors.Is(err, tun.ErrTooManySegments):
			// The packets that fit were returned; the rest of the GSO
			// burst is lost and TCP retransmits it.
			continue
		}
		// A device may fail one read (a packet it cannot parse) and go on; a
		// run of failures means it is broken, and reading on would spin.
		if failures++; failures >= maxReadFailures {
			s.log.Error("TUN reads keep failing; no more packets will be received", zap.Error(err))
			return
		}
		s.log.Warn("TUN read failed", zap.Error(err))
	}
}

// maxReadFailures is how many consecutive failed reads end the reader.
const maxReadFailures = 16

// injectInbound verifies one packet and enqueues it on g.
func (s *Stack) injectInbound(g *gro.GRO, b []byte) {
	if pkt := s.inboundPacket(b, false); pkt != nil {
		g.Enqueue(pkt)
		pkt.DecRef()
	}
}

// inboundPacket checks one packet read from the TUN (its checksums too,
// unless valid says they need no check) and returns it as a packet buffer
// for gVisor, or nil when it is dropped (and counted). Every way of reading
// the TUN passes its packets through here.
func (s *Stack) inboundPacket(b []byte, valid bool) *stack.PacketBuffer {
	var proto = header.IPv4ProtocolNumber
	switch header.IPVersion(b) {
	case header.IPv4Version:
	case header.IPv6Version:
		proto = header.IPv6ProtocolNumber
	default:
		s.stats.badVer.Add(1)
		return nil
	}
	if !valid && !checksumsValid(b) {
		s.stats.droppedIn.Add(1)
		return nil
	}
	if isEchoRequest(b) {
		s.handleEcho(b)
		return nil
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	pkt.NetworkProtocolNumber = proto
	pkt.RXChecksumValidated = true
	return pkt
}

// writeLoop moves packets from the stack's queue to the TUN in batches of up
// to batch packets, splitting GSO segments into MTU-sized packets. It exits
// when the link endpoint is closed.
func (s *Stack) writeLoop(batch int) {
	defer s.ioWG.Done()
	defer s.link.drain()
	slot := tunOffset + s.mtu
	if batch > 1 {
		slot = tunOffset + max(coalesceSlot, s.mtu)
	}
	w := &batchWriter{s: s, bufs: make([][]byte, batch), size: slot, out: make([][]byte, 0, batch)}
	if w.raw = rawGSOFile(s.dev, batch); w.raw != nil {
		w.gsoBuf = make([]byte, tunOffset+gsoMaxSize)
	}
	for {
		pkt := s.link.next()
		if pkt == nil {
			return
		}
		for pkt != nil {
			w.add(pkt)
			pkt.DecRef()
			pkt = s.link.tryNext()
		}
		w.flush()
	}
}

// batchWriter accumulates outbound packets in preallocated buffers.
type batchWriter struct {
	s      *Stack
	bufs   [][]byte // backing buffers, one per batch slot, made on first use (see buf)
	size   int      // of each backing buffer
	out    [][]byte // packets of the current batch, sliced from bufs
	failed bool     // the device reported closed; discard from now on
	// raw is the TUN's file when GSO segments are written to it whole
	// (writeGSO), with gsoBuf to build them in; nil otherwise.
	raw    *os.File
	gsoBuf []byte
}

// add copies pkt into the batch, splitting it if it is a GSO segment.
func (w *batchWriter) add(pkt *stack.PacketBuffer) {
	if pkt.GSOOptions.Type != stack.GSONone {
		if w.raw == nil || !w.writeGSO(pkt) {
			w.addGSO(pkt)
		}
		return
	}
	if len(w.out) == len(w.bufs) {
		w.flush()
	}
	buf := w.buf(len(w.out))
	n := copyPacket(buf[tunOffset:cap(buf)], pkt)
	if n < 0 {
		w.s.stats.droppedOut.Add(1)
		return
	}
	w.out = append(w.out, buf[:tunOffset+n])
}

// buf returns batch slot i's buffer, making it on first use: an idle agent
// fills only the first few of its 128 slots of 32 KB, and 4 MB it never uses
// would still count as live heap (raising the GC's goal, and so the resident
// set, by as much).
func (w *batchWriter) buf(i int) []byte {
	if w.bufs[i] == nil {
		w.bufs[i] = make([]byte, w.size)
	}
	return w.bufs[i]
}

// flush writes the batch to the device.
func (w *batchWriter) flush() {
	if len(w.out) == 0 {
		return
	}
	n := len(w.out)
	if tap := w.s.tapped(); tap != nil && !w.failed {
		// Before the write: the device may merge packets in their buffers.
		for _, b := range w.out {
			tap(true, b[tunOffset:])
		}
	}
	if !w.failed {
		_, err := w.s.dev.Write(w.out, tunOffset)
		switch {
		case err == nil:
			w.s.stats.packetsOut.Add(int64(n))
		case errors.Is(err, os.ErrClosed):
			w.failed = true
			w.s.stats.droppedOut.Add(int64(n))
		default:
			// A batch write fails per packet (e.g. a route vanished); the
			// transport layer retransmits.
			w.s.stats.droppedOut.Add(1)
			w.s.stats.packetsOut.Add(int64(n - 1))
			w.s.logWriteErr(err)
		}
	} else {
		w.s.stats.droppedOut.Add(int64(n))
	}
	w.out = w.out[:0]
}

// groBucketSize mirrors the number of segments gVisor's GRO holds per hash
// bucket (gro.groBucketSize, unexported).
const groBucketSize = 8

// flushGRO delivers every segment g holds. gVisor's GRO.Flush stops after the
// first segment of each bucket (removing it clears its list links), so it is
// called once per possible occupant.
func flushGRO(g *gro.GRO) {
	for range groBucketSize {
		g.Flush()
	}
}

package l3e

import (
	"golang.zx2c4.com/wireguard/tun"
)

// Sizes of the TUN writer.
const (
	// writeBatch bounds the packets of one TUN write: a batch of one TCP
	// flow's segments becomes one packet of up to 64 KiB (GRO), which the
	// kernel forwards and acknowledges once.
	writeBatch = 32
	// writeQueue is how many packets wait for the writer before senders block.
	writeQueue = 256
	// queuedSize holds a packet of the largest MTU a template may push.
	queuedSize = 2048
)

// TUNWriter writes packets to a TUN from a goroutine of its own, in batches of
// what has queued up while the last write ran: a burst of one TCP flow's
// segments reaches the kernel coalesced (wireguard-go's tun does the GRO when
// the device has offloads), and reading and decrypting the next records goes
// on meanwhile. Build it with NewTUNWriter, stop it with Close.
type TUNWriter struct {
	dev    tun.Device
	failed func(n int)
	in     chan []byte // tunOffset headroom, then the packet
	free   chan []byte // spent queue buffers
	done   chan struct{}
}

// NewTUNWriter starts the writer of dev; failed is told how many packets a
// write the TUN refused held.
func NewTUNWriter(dev tun.Device, failed func(n int)) *TUNWriter {
	w := &TUNWriter{dev: dev, failed: failed, in: make(chan []byte, writeQueue),
		free: make(chan []byte, writeQueue), done: make(chan struct{})}
	go func() { // owned by w: Close waits for it
		defer close(w.done)
		w.run()
	}()
	return w
}

// Write queues a copy of pkt; it blocks while the queue is full. Callers must
// have stopped calling it before Close.
func (w *TUNWriter) Write(pkt []byte) {
	var b []byte
	select {
	case b = <-w.free:
	default:
		b = make([]byte, 0, queuedSize)
	}
	w.in <- append(b[:tunOffset], pkt...)
}

// Close writes what is queued and stops the writer.
func (w *TUNWriter) Close() {
	close(w.in)
	<-w.done
}

// run writes batches until the queue is closed. Each packet is copied into
// a buffer of the batch large enough for a coalesced 64 KiB packet.
func (w *TUNWriter) run() {
	bufs := make([][]byte, writeBatch)
	for i := range bufs {
		bufs[i] = make([]byte, 0, bufSize)
	}
	batch := make([][]byte, 0, writeBatch)
	for b := range w.in {
		batch = append(batch[:0], w.take(bufs[0], b))
	more:
		for len(batch) < writeBatch {
			select {
			case b, ok := <-w.in:
				if !ok {
					break more
				}
				batch = append(batch, w.take(bufs[len(batch)], b))
			default:
				break more
			}
		}
		if _, err := w.dev.Write(batch, tunOffset); err != nil {
			w.failed(len(batch))
		}
	}
}

// take copies the queued b into dst and returns b to the free list.
func (w *TUNWriter) take(dst, b []byte) []byte {
	dst = append(dst[:0], b...)
	select {
	case w.free <- b:
	default:
	}
	return dst
}

package l7

import (
	"crypto/tls"
	"net"
	"sync"
)

// TLSConn is a TLS connection of the tunnel whose large writes reach the
// network in few system calls. crypto/tls seals a write into records of at
// most 16 KiB and writes each record to the connection on its own: a 1 MiB
// DATA frame was 64 system calls, and 64 TCP pushes of 16 KiB that the
// receiver's kernel and TLS then handle one by one. A Write larger than one
// record collects its records in a buffer borrowed for the call and writes
// them together; small writes go through as they are, and an idle connection
// holds no buffer.
type TLSConn struct {
	*tls.Conn
	w *batchWriter
}

func newTLSConn(raw net.Conn, wrap func(net.Conn) *tls.Conn) *TLSConn {
	w := &batchWriter{Conn: raw}
	return &TLSConn{Conn: wrap(w), w: w}
}

// maxPlaintext is the most a TLS record carries: writes up to it are one record.
const maxPlaintext = 16 << 10

// Write writes p as TLS records, batched into few system calls when p takes
// more than one.
func (c *TLSConn) Write(p []byte) (int, error) {
	if len(p) <= maxPlaintext {
		return c.Conn.Write(p)
	}
	c.w.begin()
	n, err := c.Conn.Write(p)
	if ferr := c.w.end(); err == nil && ferr != nil {
		err = ferr
	}
	return n, err
}

// batchWriter sits under crypto/tls. Between begin and end it collects the
// records written to it in a pooled buffer, writing it out when it is full
// and at the end; otherwise it writes through. Batches may nest (two writers
// on one connection, which crypto/tls serialises): the last end flushes.
type batchWriter struct {
	net.Conn
	mu    sync.Mutex
	depth int
	buf   *[]byte // borrowed while depth > 0
}

// batchBuffer is the most a batch holds before it is written out: 16 full
// records.
const batchBuffer = 16 * (maxPlaintext + 256)

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchBuffer); return &b }}

func (w *batchWriter) begin() {
	w.mu.Lock()
	if w.depth == 0 {
		w.buf = batchPool.Get().(*[]byte)
	}
	w.depth++
	w.mu.Unlock()
}

func (w *batchWriter) end() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.depth--
	if w.depth > 0 {
		return nil
	}
	err := w.flushLocked()
	*w.buf = (*w.buf)[:0]
	batchPool.Put(w.buf)
	w.buf = nil
	return err
}

func (w *batchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.depth == 0 {
		return w.Conn.Write(p)
	}
	b := *w.buf
	if len(b)+len(p) > cap(b) {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
		b = *w.buf
		if len(p) > cap(b) {
			return w.Conn.Write(p)
		}
	}
	*w.buf = append(b, p...)
	return len(p), nil
}

// flushLocked writes out what the batch holds.
func (w *batchWriter) flushLocked() error {
	b := *w.buf
	if len(b) == 0 {
		return nil
	}
	*w.buf = b[:0]
	_, err := w.Conn.Write(b)
	return err
}

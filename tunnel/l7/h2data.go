package l7

import (
	"io"
	"sync"

	"golang.org/x/net/http2"
)

// onData reads the payload of a DATA frame whose header fh the Framer has
// read. The payload goes from the connection straight into the chunks that
// the stream's reader will take, instead of through the Framer's buffer and
// a copy: every received byte is copied once fewer.
func (cc *ClientConn) onData(fh http2.FrameHeader) error {
	n := int64(fh.Length) // flow control counts padding too
	rest := int(fh.Length)
	pad := 0
	if fh.Flags.Has(http2.FlagDataPadded) {
		var b [1]byte
		if rest == 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := io.ReadFull(cc.conn, b[:]); err != nil {
			return err
		}
		pad, rest = int(b[0]), rest-1
		if pad > rest {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		rest -= pad
	}
	var data chunks
	if err := data.readFrom(cc.conn, rest); err != nil {
		data.discard()
		return err
	}
	if pad > 0 {
		if _, err := io.CopyN(io.Discard, cc.conn, int64(pad)); err != nil {
			data.discard()
			return err
		}
	}

	cc.mu.Lock()
	if n > cc.recvAvail {
		cc.mu.Unlock()
		data.discard()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	cc.recvAvail -= n
	s, err := cc.streamLocked(fh.StreamID)
	switch {
	case err != nil:
		cc.mu.Unlock()
		data.discard()
		return err
	case s != nil && s.bodyClosed && !s.readEOF:
		// A server's handler closed the request body: drop what follows.
		cc.mu.Unlock()
		data.discard()
		cc.returnWindow(nil, int(n))
		if fh.Flags.Has(http2.FlagDataEndStream) {
			cc.mu.Lock()
			s.endReadLocked()
			cc.mu.Unlock()
		}
		return nil
	case s == nil || !s.peerHead || s.readEOF || s.readErr != nil:
		// A stream we reset or forgot: its bytes go back to the connection.
		// DATA before the response, or after its end, is the peer's error.
		cc.mu.Unlock()
		data.discard()
		cc.returnWindow(nil, int(n))
		if s != nil {
			return http2.StreamError{StreamID: fh.StreamID, Code: http2.ErrCodeStreamClosed}
		}
		return nil
	case n > s.recvAvail:
		cc.mu.Unlock()
		data.discard()
		cc.returnWindow(nil, int(n))
		return http2.StreamError{StreamID: fh.StreamID, Code: http2.ErrCodeFlowControl}
	}
	s.recvAvail -= n
	if data.n > 0 {
		s.rbuf.append(&data)
		s.rcond.Broadcast()
	}
	if fh.Flags.Has(http2.FlagDataEndStream) {
		s.endReadLocked()
	}
	cc.mu.Unlock()
	cc.returnWindow(s, int(n)-rest) // padding is consumed at once
	return nil
}

// chunks is a stream's received data: pooled chunks, each released as soon as
// it has been read, so that a drained stream holds none. Each chunk's length
// is what it holds, its capacity the size of its pool.
type chunks struct {
	bufs [][]byte
	r    int // read offset in bufs[0]
	n    int // bytes buffered
}

// Chunk sizes: a chunk is sized for the data to come, so that a large DATA
// frame fills few chunks and a small one does not pin a large chunk.
const (
	chunk0 = 1 << 10
	chunk1 = 4 << 10
	chunk2 = 16 << 10
	chunk3 = 64 << 10
	chunk4 = 256 << 10
)

var chunkPools = [...]sync.Pool{
	{New: func() any { return new([chunk0]byte) }},
	{New: func() any { return new([chunk1]byte) }},
	{New: func() any { return new([chunk2]byte) }},
	{New: func() any { return new([chunk3]byte) }},
	{New: func() any { return new([chunk4]byte) }},
}

// getChunk returns an empty chunk sized for n bytes to come.
func getChunk(n int) []byte {
	switch {
	case n <= chunk0:
		return chunkPools[0].Get().(*[chunk0]byte)[:0]
	case n <= chunk1:
		return chunkPools[1].Get().(*[chunk1]byte)[:0]
	case n <= chunk2:
		return chunkPools[2].Get().(*[chunk2]byte)[:0]
	case n <= chunk3:
		return chunkPools[3].Get().(*[chunk3]byte)[:0]
	default:
		return chunkPools[4].Get().(*[chunk4]byte)[:0]
	}
}

func putChunk(b []byte) {
	switch cap(b) {
	case chunk0:
		chunkPools[0].Put((*[chunk0]byte)(b[:chunk0]))
	case chunk1:
		chunkPools[1].Put((*[chunk1]byte)(b[:chunk1]))
	case chunk2:
		chunkPools[2].Put((*[chunk2]byte)(b[:chunk2]))
	case chunk3:
		chunkPools[3].Put((*[chunk3]byte)(b[:chunk3]))
	case chunk4:
		chunkPools[4].Put((*[chunk4]byte)(b[:chunk4]))
	}
}

// readFrom reads exactly n bytes from r into new chunks.
func (c *chunks) readFrom(r io.Reader, n int) error {
	for n > 0 {
		b := getChunk(n)
		b = b[:min(n, cap(b))]
		m, err := io.ReadFull(r, b)
		c.bufs = append(c.bufs, b[:m])
		c.n += m
		n -= m
		if err != nil {
			return err
		}
	}
	return nil
}

// append moves the chunks of o, which none has read from, after c's.
func (c *chunks) append(o *chunks) {
	if c.n == 0 {
		c.discard()
		*c, *o = *o, chunks{}
		return
	}
	c.bufs = append(c.bufs, o.bufs...)
	c.n += o.n
	*o = chunks{}
}

func (c *chunks) read(p []byte) int {
	n := 0
	for len(p) > 0 && c.n > 0 {
		first := c.bufs[0]
		m := copy(p, first[c.r:])
		c.r += m
		c.n -= m
		n += m
		p = p[m:]
		if c.r == len(first) {
			putChunk(first)
			c.bufs[0] = nil
			c.bufs = c.bufs[1:]
			c.r = 0
		}
	}
	if c.n == 0 {
		c.discard()
	}
	return n
}

// discard releases every chunk and returns how many bytes were dropped.
func (c *chunks) discard() int {
	n := c.n
	for _, b := range c.bufs {
		putChunk(b)
	}
	*c = chunks{}
	return n
}

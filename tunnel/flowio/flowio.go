// Package flowio copies the bytes of relayed flows between connections,
// holding a copy buffer only while data moves. Every relay of ztagent (the
// agent's TUN bridge, the PoP, the publisher) holds thousands of flows that
// are idle most of their life: a copy that blocked in Read with its buffer
// would pin that buffer for as long as the flow is idle. Copy instead waits
// for data without a buffer, borrows one from a pool for the reads that find
// data waiting, and gives it back before it waits again.
package flowio

import (
	"errors"
	"io"
	"sync"
)

// ReadWaiter is a reader that can wait for data without a buffer.
type ReadWaiter interface {
	// WaitRead returns once a Read would not block: data, the end of the
	// input, or an error is waiting. It may return that error itself.
	WaitRead() error
}

// Buffer sizes. A read starts with a small buffer and moves to a large one
// when it filled the small one (bulk data is waiting), and back when reads come
// up short, so that many flows trickling at once borrow little, and a bulk
// transfer costs few reads and writes.
const (
	SmallBuffer = 16 << 10
	LargeBuffer = 256 << 10
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, SmallBuffer); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, LargeBuffer); return &b }}
)

// BufferedReader is a reader that holds what it received in buffers of its
// own (a tunnel stream): Copy has it write them to the destination directly,
// with no copy into a buffer of Copy's.
type BufferedReader interface {
	// WriteBufferedTo writes what is buffered to w and releases it; it
	// blocks until something is buffered or the input has ended. With
	// nothing left it returns the end of the input as readErr (io.EOF for
	// a clean end); a failed write of w is writeErr.
	WriteBufferedTo(w io.Writer) (n int, readErr, writeErr error)
}

// Waiter returns a function that waits until a Read of r would not block,
// without a buffer: r's own WaitRead, or, for a socket on a system that
// allows it, a wait for the socket to be readable. It returns nil when r
// cannot be waited on; Copy then reads at once and blocks with its buffer.
func Waiter(r io.Reader) func() error {
	if w, ok := r.(ReadWaiter); ok {
		return w.WaitRead
	}
	return socketWaiter(r)
}

// Copy copies src to dst until src ends, calling flush (when not nil) after
// every write, so that interactive traffic is not held back. Before each read
// it calls wait (when not nil) with no buffer borrowed; an error from wait is
// a read error. It returns a nil readErr when src ended cleanly (io.EOF), the
// read error otherwise, or the error of a write or flush as writeErr. It does not use io.Copy, whose
// WriterTo and ReaderFrom fast paths would bring buffers of their own.
func Copy(dst io.Writer, src io.Reader, wait func() error, flush func() error) (readErr, writeErr error) {
	if br, ok := src.(BufferedReader); ok {
		return copyBuffered(dst, br, flush)
	}
	large := false
	for {
		if wait != nil {
			if err := wait(); err != nil {
				return endOf(err), nil
			}
		}
		bp := get(large)
		buf := *bp
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				put(bp, large)
				return nil, werr
			}
			if flush != nil {
				if ferr := flush(); ferr != nil {
					put(bp, large)
					return nil, ferr
				}
			}
		}
		put(bp, large)
		switch {
		case n == len(buf):
			large = true
		case n < len(buf)/4:
			large = false
		}
		if err != nil {
			return endOf(err), nil
		}
	}
}

// copyBuffered is Copy from a BufferedReader, which waits for data itself.
func copyBuffered(dst io.Writer, src BufferedReader, flush func() error) (readErr, writeErr error) {
	for {
		n, rerr, werr := src.WriteBufferedTo(dst)
		if werr != nil {
			return nil, werr
		}
		if n > 0 && flush != nil {
			if ferr := flush(); ferr != nil {
				return nil, ferr
			}
		}
		if rerr != nil {
			return endOf(rerr), nil
		}
	}
}

// endOf is the read error that ends a copy: nil for a clean end.
func endOf(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func get(large bool) *[]byte {
	if large {
		return largePool.Get().(*[]byte)
	}
	return smallPool.Get().(*[]byte)
}

func put(bp *[]byte, large bool) {
	if large {
		largePool.Put(bp)
	} else {
		smallPool.Put(bp)
	}
}

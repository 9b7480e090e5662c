package steering

import "sync/atomic"

// lazyChunkLen is the number of elements in one chunk of a lazy table:
// chunks are made when one of their elements is first asked for, so a
// snapshot whose rules and apps are mostly unused holds few.
const lazyChunkLen = 256

type lazyChunk[T any] [lazyChunkLen]atomic.Pointer[T]

// lazy is a table of n values made on first use and kept, for what a
// snapshot could derive for every rule or app but most lookups never need
// (50,000 rule texts, 10,000 materialized apps: megabytes), while an
// element's second use must not allocate. It is safe for concurrent use.
type lazy[T any] struct {
	chunks []atomic.Pointer[lazyChunk[T]]
}

func newLazy[T any](n int) lazy[T] {
	return lazy[T]{chunks: make([]atomic.Pointer[lazyChunk[T]], (n+lazyChunkLen-1)/lazyChunkLen)}
}

// load returns element i, nil until it is made (keep). Callers make it
// then: l.keep(i, make(i)). Concurrent first uses may each make it; all
// get the one kept.
func (l *lazy[T]) load(i int32) *T {
	if c := l.chunks[i/lazyChunkLen].Load(); c != nil {
		return c[i%lazyChunkLen].Load()
	}
	return nil
}

// keep makes v element i unless one was kept before, and returns the one
// kept.
func (l *lazy[T]) keep(i int32, v *T) *T {
	cp := &l.chunks[i/lazyChunkLen]
	c := cp.Load()
	if c == nil {
		c = new(lazyChunk[T])
		if !cp.CompareAndSwap(nil, c) {
			c = cp.Load()
		}
	}
	if slot := &c[i%lazyChunkLen]; !slot.CompareAndSwap(nil, v) {
		return slot.Load()
	}
	return v
}

package agent

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// trimMin is the least heap memory held beyond the live heap that is worth a
// forced collection to return (see trimMemory). At 10,000 apps such a
// collection costs a few milliseconds of CPU; an idle agent makes less than
// that in garbage, so it rarely collects.
const trimMin = 1 << 20

// trimSamples are what trimMemory reads: the heap memory that is free but not
// returned to the OS, the memory of objects (live, or dead and not yet
// collected), and the live heap at the last collection.
var trimSamples = []string{
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
}

// trimBase is the memory of heap objects right after the last trim: what was
// live then. Memory is the process's, so this is too.
var trimBase atomic.Uint64

// trimFreeBase is the free heap memory the last trim could not return.
var trimFreeBase atomic.Uint64

// trimMemory returns to the OS the heap memory the agent holds beyond its live
// heap, when that is more than trimMin and an eighth of the live heap, and
// reports whether it did. What it holds is the free heap memory not returned
// yet, plus the objects beyond those right after the last trim (before the
// first, beyond the live heap of the last collection): a large answer (the
// status of 10,000 apps is megabytes of JSON) that was still being written at
// the last collection counts as live for it, and without another collection
// its garbage would stay resident. The runtime lets the heap grow to twice the live
// heap (GOGC=100) and keeps what it grew to resident: an agent that compiled
// a large config and set its routes once idles at twice the memory it uses
// (81 MB with 10,000 apps, of a ~30 MB live heap). Reading the figures is
// cheap (no collection, no stop); the forced collections cost a few
// milliseconds of CPU at 10,000 apps and happens only when garbage or free
// memory has piled up, so an idle agent that trimmed once does not again.
func trimMemory() bool {
	s := make([]metrics.Sample, len(trimSamples))
	for i, name := range trimSamples {
		s[i].Name = name
	}
	metrics.Read(s)
	for _, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return false // not this runtime's metric: do not guess
		}
	}
	free, objects, live := s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
	// What objects the heap holds beyond what it held right after the last
	// trim is garbage or new: the heap's objects never come down to the live
	// heap itself (the spans the processors' caches hold count as objects
	// whole), and measured against it an idle agent trimmed at each look.
	// Likewise, free memory stays after a trim (the pages each processor
	// keeps cached for its next spans, up to 512 kB each): only what is
	// free beyond it counts.
	ref := live
	if base := trimBase.Load(); base > 0 {
		ref = base
	}
	held := uint64(0)
	if fb := trimFreeBase.Load(); free > fb {
		held = free - fb
	}
	if objects > ref {
		held += objects - ref
	}
	if held < trimMin || held < live/8 {
		return false
	}
	// Two collections: what sync.Pools hold (encoding/json keeps its last
	// encoder's buffer, megabytes after a large status) survives the first
	// in the pools' victim caches.
	runtime.GC()
	debug.FreeOSMemory()
	metrics.Read(s[:2])
	trimFreeBase.Store(s[0].Value.Uint64())
	trimBase.Store(s[1].Value.Uint64())
	return true
}

// trimEvery is how often the agent looks for memory to trim.
const trimEvery = 5 * time.Second

// trimDelay is how long after a large control answer trimSoon trims: long
// enough for a client's next call in a burst (ztdiag's) to be served first.
const trimDelay = 2 * time.Second

// trimPending says a trimSoon is scheduled.
var trimPending atomic.Bool

// trimSoon trims the memory (trimMemory) trimDelay from now, once however
// often it is called meanwhile.
func trimSoon() {
	if trimPending.CompareAndSwap(false, true) {
		time.AfterFunc(trimDelay, func() {
			trimPending.Store(false)
			trimMemory()
		})
	}
}

// largeAnswer is the size of a control answer past which its garbage is worth
// a trim: the status of 10,000 apps is megabytes of JSON, and encoding it
// leaves several times that behind.
const largeAnswer = 1 << 20

// trimAfterLarge serves h, and trims the memory soon after an answer of more
// than largeAnswer bytes, rather than at the next 30 s tick.
func trimAfterLarge(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		if cw.n > largeAnswer {
			trimSoon()
		}
	})
}

// countingWriter counts the bytes of an answer.
type countingWriter struct {
	http.ResponseWriter
	n int
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += n
	return n, err
}

// Flush passes a flush on (pprof's profiles and the log stream flush).
func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer (its
// deadlines).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

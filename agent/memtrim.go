package agent

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// trimMin is the least heap memory held beyond the live heap that is worth a
// forced collection to return (see trimMemory).
const trimMin = 4 << 20

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

// trimMemory returns to the OS the heap memory the agent holds beyond its live
// heap, when that is more than trimMin and a quarter of the live heap, and
// reports whether it did. What it holds is the free heap memory not returned
// yet, plus the objects beyond the live heap of the last collection, or beyond
// what was live after the last trim when that is less: a large answer (the
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
	if base := trimBase.Load(); base > 0 && base < live {
		live = base
	}
	held := free
	if objects > live {
		held += objects - live
	}
	if held < trimMin || held < live/4 {
		return false
	}
	// Two collections: what sync.Pools hold (encoding/json keeps its last
	// encoder's buffer, megabytes after a large status) survives the first
	// in the pools' victim caches.
	runtime.GC()
	debug.FreeOSMemory()
	metrics.Read(s[1:2])
	trimBase.Store(s[1].Value.Uint64())
	return true
}

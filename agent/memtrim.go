package agent

import (
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

// trimBase is the memory of heap objects right after the last trim (or
// returnMemory): what was live then. Process-wide, as the heap is.
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
	// Likewise, free memory stays after a trim, 0 to 3 MB that
	// debug.FreeOSMemory does not return (Go 1.26): its collection's work
	// buffers, which the background sweeper frees after the scavenge
	// (runtime bgsweep, freeSomeWbufs); GODEBUG=gcstoptheworld=2, which
	// frees them before, leaves none. Only what is free beyond it counts.
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
	returnMemory()
	return true
}

// returnMemory collects and returns to the OS every free page it can, and
// notes what is left for trimMemory's next look. The agent calls it directly
// after what surely leaves megabytes behind (compiling a config, building
// its parts). Two collections: what sync.Pools hold (encoding/json keeps its
// last encoder's buffer, megabytes after a large status) survives the first
// in the pools' victim caches.
func returnMemory() {
	runtime.GC()
	debug.FreeOSMemory()
	s := []metrics.Sample{{Name: trimSamples[0]}, {Name: trimSamples[1]}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 && s[1].Value.Kind() == metrics.KindUint64 {
		trimFreeBase.Store(s[0].Value.Uint64())
		trimBase.Store(s[1].Value.Uint64())
	}
}

// trimEvery is how often the agent looks for memory to trim (maintain): a
// burst's garbage (a config, a publisher selection round, a status of 10,000
// apps) is returned within this long.
const trimEvery = 5 * time.Second

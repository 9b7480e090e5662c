package agent

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

var sink [][]byte

func heapHeld(t *testing.T) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func heapReleased(t *testing.T) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestTrimMemory checks that garbage piled up beyond the live heap is
// returned, and that a trimmed heap is left alone (no forced collection).
func TestTrimMemory(t *testing.T) {
	trimMemory() // whatever the tests before left
	for range 64 {
		sink = append(sink, make([]byte, 256<<10)) // 16 MB, then dropped
	}
	sink = nil
	runtime.GC() // the garbage is now free heap memory, still resident
	if held := heapHeld(t); held < trimMin {
		t.Skipf("the runtime returned the memory itself (%d bytes free)", held)
	}
	released := heapReleased(t)
	if !trimMemory() {
		t.Fatal("trimMemory kept 16 MB of free heap")
	}
	// Not all of it: the trim's own collection leaves its work buffers,
	// freed after the scavenge (see trimMemory), up to a few MB in a test
	// binary's heap.
	if got := heapReleased(t) - released; got < 12<<20 {
		t.Fatalf("the trim returned %d bytes of the 16 MB", got)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if trimMemory() {
		t.Fatal("trimMemory collected again with nothing to return")
	}
	var again runtime.MemStats
	runtime.ReadMemStats(&again)
	if again.NumForcedGC != after.NumForcedGC {
		t.Fatal("a trim with nothing to return forced a collection")
	}
}

// TestTrimMemoryLiveAtLastGC checks that memory that was live at the last
// collection and is garbage now (a large answer written during it) is
// returned too.
func TestTrimMemoryLiveAtLastGC(t *testing.T) {
	trimMemory()
	for range 64 {
		sink = append(sink, make([]byte, 256<<10))
	}
	runtime.GC() // 16 MB live at this collection
	sink = nil   // and garbage from here on, with no collection to see it
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if !trimMemory() {
		t.Fatal("trimMemory kept 16 MB that were live at the last collection and are garbage now")
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.NumForcedGC == before.NumForcedGC || after.HeapAlloc > before.HeapAlloc-8<<20 {
		t.Fatalf("no collection returned the garbage: heap %d → %d bytes", before.HeapAlloc, after.HeapAlloc)
	}
}

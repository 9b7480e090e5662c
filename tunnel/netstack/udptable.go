package netstack

import (
	"container/heap"
	"sync"
	"sync/atomic"
)

// udpTable bounds the UDP flows relayed at once (Config.MaxUDPFlows). Each
// new 4-tuple is a flow, so a scan or a flood of source ports would otherwise
// hold a gVisor endpoint, two goroutines and a tunnel stream per datagram
// for a whole idle timeout. When the table is full, the flow idle longest is
// evicted to make room.
//
// Flows are kept in a min-heap by the time of their last datagram as it was
// when last looked at. Relays update that time on every datagram without
// the table's lock; the heap catches up only when it looks at its top
// (lazily: a top whose time moved is sifted down and the next one looked
// at), so the hot path pays one atomic store.
type udpTable struct {
	mu   sync.Mutex
	max  int
	heap udpHeap
}

// udpEntry is one flow in the table.
type udpEntry struct {
	last  atomic.Int64 // unix nanos of the last datagram either way
	key   int64        // last as the heap saw it (under the table's lock)
	index int          // in the heap; -1 when out of it
	// evicted is closed when the table evicts the flow; its relay then
	// tears it down.
	evicted chan struct{}
}

func newUDPEntry(now int64) *udpEntry {
	e := &udpEntry{key: now, index: -1, evicted: make(chan struct{})}
	e.last.Store(now)
	return e
}

// add puts e in the table and returns the flow it evicted for room, or nil.
func (t *udpTable) add(e *udpEntry) (victim *udpEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.heap) >= t.max {
		victim = t.oldestLocked()
		heap.Remove(&t.heap, victim.index)
		close(victim.evicted)
	}
	e.key = e.last.Load()
	heap.Push(&t.heap, e)
	return victim
}

// remove takes e out of the table (its flow ended); it is idempotent.
func (t *udpTable) remove(e *udpEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.index >= 0 {
		heap.Remove(&t.heap, e.index)
	}
}

// oldestLocked returns the flow idle longest. The loop ends: every turn
// either returns or moves a key up to a time at least as late as every key
// it passes.
func (t *udpTable) oldestLocked() *udpEntry {
	for {
		e := t.heap[0]
		if cur := e.last.Load(); cur != e.key {
			e.key = cur
			heap.Fix(&t.heap, 0)
			continue
		}
		return e
	}
}

// udpHeap implements heap.Interface, oldest key first.
type udpHeap []*udpEntry

func (h udpHeap) Len() int           { return len(h) }
func (h udpHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h udpHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *udpHeap) Push(x any) {
	e := x.(*udpEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *udpHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}

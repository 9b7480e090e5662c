package netstack

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func TestUDPTableEvictsOldest(t *testing.T) {
	tb := udpTable{max: 3}
	es := make([]*udpEntry, 5)
	for i := range es {
		es[i] = newUDPEntry(int64(10 * (i + 1)))
	}
	for _, e := range es[:3] {
		if v := tb.add(e); v != nil {
			t.Fatalf("evicted before full")
		}
	}
	es[0].last.Store(100) // the oldest got a datagram: 1 is now idle longest
	if v := tb.add(es[3]); v != es[1] {
		t.Fatalf("evicted %v, want the flow idle longest", v)
	}
	select {
	case <-es[1].evicted:
	default:
		t.Fatal("victim not told")
	}
	tb.remove(es[1]) // its relay ends: no effect
	tb.remove(es[2]) // an ended flow leaves room
	if v := tb.add(es[4]); v != nil {
		t.Fatalf("evicted with room left")
	}
	if len(tb.heap) != 3 {
		t.Fatalf("%d entries, want 3", len(tb.heap))
	}
}

// TestUDPFlowFlood opens more flows (4-tuples) than the table holds: the
// oldest idle ones are closed and counted, the newest work.
func TestUDPFlowFlood(t *testing.T) {
	e := newUDPEcho(t)
	const max = 8
	h := newHarness(t, Config{TCP: refuseAll, UDP: e.handler, MaxUDPFlows: max})
	buf := make([]byte, 100)
	for i := range 3 * max {
		c, err := h.dialUDP(netip.MustParseAddrPort("100.64.0.9:53"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("q"))
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
	}
	ctx := testCtx(t)
	for s := h.st.Stats(); s.UDPEvicted != 2*max || s.UDPOpen != max; s = h.st.Stats() {
		if ctx.Err() != nil {
			t.Fatalf("stats %+v; want %d evicted, %d open", s, 2*max, max)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := e.closed.Load(); got != 2*max {
		t.Errorf("%d upstreams closed, want %d", got, 2*max)
	}
}

// TestUDPLargeDatagram: datagrams above the MTU pass both ways (IP
// fragmentation inside the stack), and the idle timeout can change live.
func TestUDPLargeDatagram(t *testing.T) {
	e := newUDPEcho(t)
	h := newHarness(t, Config{TCP: refuseAll, UDP: e.handler})
	h.st.SetIdleUDP(time.Hour)
	if h.st.idleUDP() != time.Hour {
		t.Fatalf("idle %v after SetIdleUDP", h.st.idleUDP())
	}
	c, err := h.dialUDP(netip.MustParseAddrPort("100.64.0.9:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<16)
	for _, size := range []int{1400, 4000, 60000} {
		p := bytes.Repeat([]byte{byte(size)}, size)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], p) {
			t.Fatalf("%d bytes echoed as %d, %v", size, n, err)
		}
	}
}

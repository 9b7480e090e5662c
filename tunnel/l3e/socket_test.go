package l3e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// Records queued on a SendQueue leave in order, a full queue on its own and
// the rest at Flush (runs of one size coalesced on Linux: UDP GSO), and
// ReadBatch and Segments read them back in order (coalesced again: GRO).
func TestSocketBatches(t *testing.T) {
	s, ps := socketPair(t)
	s.Conn().SetReadDeadline(time.Now().Add(5 * time.Second))
	ps.Conn().SetReadDeadline(time.Now().Add(5 * time.Second))

	t.Logf("UDP GSO: %v, GRO: %v", s.gso.Load(), ps.gro)
	const n = 3 * SockBatch / 2
	q := NewSendQueue(nil)
	for i := range n {
		if err := q.Add(s, fmt.Appendf(nil, "up %d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if q.Len() != n-SockBatch {
		t.Fatalf("%d queued after the first batch left, want %d", q.Len(), n-SockBatch)
	}
	if err := q.Flush(s); err != nil {
		t.Fatal(err)
	}
	from := readInOrder(t, ps, "up", n)
	// Back to the sender's address, on the unconnected socket.
	for i := range 3 {
		q.Add(ps, fmt.Appendf(nil, "down %d", i), from)
	}
	if err := q.Flush(ps); err != nil {
		t.Fatal(err)
	}
	readInOrder(t, s, "down", 3)
}

// socketPair returns a socket connected to peer, an unconnected one, on
// loopback; both are closed when the test ends.
func socketPair(t *testing.T) (s, peer *Socket) {
	t.Helper()
	p, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	peer = NewSocket(p)
	t.Cleanup(func() { peer.Close() })
	raw, err := net.DialUDP("udp", nil, p.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s = NewSocket(raw)
	t.Cleanup(func() { s.Close() })
	return s, peer
}

// readInOrder reads n datagrams from s, which must be "<what> 0" to
// "<what> n-1" in order, and returns the source of the last.
func readInOrder(t *testing.T, s *Socket, what string, n int) (from net.Addr) {
	t.Helper()
	ms := s.NewMessages(SockBatch)
	for got := 0; got < n; {
		k, err := s.ReadBatch(ms)
		if err != nil {
			t.Fatal(err)
		}
		for i := range k {
			s.Segments(&ms[i], func(buf []byte, off, end int) {
				if m, want := string(buf[off:end]), fmt.Sprintf("%s %d", what, got); m != want {
					t.Fatalf("got %q, want %q", m, want)
				}
				got++
			})
			from = ms[i].Addr
		}
	}
	return from
}

// A FeedConn reads what is fed, honours read deadlines (a past one wakes a
// blocked Read, as pion's context cancellation needs), and its Close ends
// reads without closing the real socket.
func TestFeedConn(t *testing.T) {
	var wrote [][]byte
	f := NewFeedConn(nil, nil, func(p []byte) (int, error) {
		wrote = append(wrote, append([]byte(nil), p...))
		return len(p), nil
	})
	d := []byte("hello")
	f.Feed(d)
	d[0] = 'j' // Feed copied it
	buf := make([]byte, 10)
	if n, err := f.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	f.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := f.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after the deadline: %v", err)
	}
	f.SetReadDeadline(time.Time{})
	woken := make(chan error, 1)
	go func() {
		_, err := f.Read(buf)
		woken <- err
	}()
	time.Sleep(10 * time.Millisecond)
	f.SetReadDeadline(time.Unix(0, 1))
	if err := <-woken; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a past deadline did not wake the read: %v", err)
	}
	f.SetReadDeadline(time.Time{})
	f.Feed([]byte("again"))
	if n, err := f.Read(buf); err != nil || string(buf[:n]) != "again" {
		t.Fatalf("read after the deadline was cleared: %q, %v", buf[:n], err)
	}
	if _, err := f.Write([]byte("out")); err != nil || len(wrote) != 1 {
		t.Fatalf("write: %v, %q", err, wrote)
	}
	f.Close()
	if _, err := f.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if f.Feed([]byte("late")) {
		t.Fatal("fed after close")
	}
}

// A send that fails counts its records on the queue's drop counter: a full
// queue's batch at Add, the rest at Flush.
func TestSendQueueCountsDrops(t *testing.T) {
	s, _ := socketPair(t)
	s.Close()
	var dropped atomic.Uint64
	q := NewSendQueue(&dropped)
	for i := range SockBatch + 3 {
		err := q.Add(s, []byte("lost"), nil)
		if (i == SockBatch) != (err != nil) {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if got := dropped.Load(); got != SockBatch {
		t.Fatalf("%d dropped after the full batch, want %d", got, SockBatch)
	}
	if err := q.Flush(s); err == nil {
		t.Fatal("Flush on a closed socket succeeded")
	}
	if got := dropped.Load(); got != SockBatch+3 {
		t.Fatalf("%d dropped after Flush, want %d", got, SockBatch+3)
	}
}

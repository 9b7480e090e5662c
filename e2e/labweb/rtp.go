package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
)

// rtpStream plays one side of an RTP-like call: from local it sends size-byte
// datagrams to peer at rate per second for d (each carrying its sequence
// number and send time), and counts what the peer sends back the same way;
// then it prints what it received: loss and RFC 3550 interarrival jitter.
// Both ends run on the same host, so the send times are on the receiver's clock.
func rtpStream(local, peer string, rate, size int, d time.Duration) error {
	la, err := net.ResolveUDPAddr("udp", local)
	if err != nil {
		return err
	}
	pa, err := net.ResolveUDPAddr("udp", peer)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp", la)
	if err != nil {
		return err
	}
	defer c.Close()
	size = max(size, 16)
	var st rtpStats
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.receive(c, size)
	}()
	total := int(d.Seconds() * float64(rate))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	p := make([]byte, size)
	for i := range total {
		binary.BigEndian.PutUint64(p, uint64(i))
		binary.BigEndian.PutUint64(p[8:], uint64(time.Now().UnixNano()))
		if _, err := c.WriteToUDP(p, pa); err != nil {
			return err
		}
		<-tick.C
	}
	tick.Stop()
	// The peer may have started later: wait for its last datagrams.
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	fmt.Printf("rtp: sent %d received %d lost %d jitter_ms %.3f max_delay_ms %.3f\n",
		total, st.received, total-st.received, st.jitter/1e6, float64(st.maxDelay)/1e6)
	return nil
}

type rtpStats struct {
	mu       sync.Mutex
	received int
	jitter   float64 // nanoseconds
	maxDelay time.Duration
	last     time.Duration // transit of the previous datagram
}

// receive counts datagrams until the socket's deadline passes or it closes.
func (s *rtpStats) receive(c *net.UDPConn, size int) {
	buf := make([]byte, 1<<16)
	seen := map[uint64]bool{}
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if n < 16 {
			continue
		}
		seq := binary.BigEndian.Uint64(buf)
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(buf[8:])))
		transit := now.Sub(sent)
		s.mu.Lock()
		if !seen[seq] {
			seen[seq] = true
			if s.received > 0 {
				dd := float64(transit - s.last)
				if dd < 0 {
					dd = -dd
				}
				s.jitter += (dd - s.jitter) / 16
			}
			s.last = transit
			s.received++
			s.maxDelay = max(s.maxDelay, transit)
		}
		s.mu.Unlock()
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"
)

// serveUDPEcho answers every datagram on addr with the same bytes, except a
// datagram "whoami", answered "remote=ADDR" (who sent it: the publisher, or
// the client itself when the flow went direct). It runs until ctx ends.
func serveUDPEcho(ctx context.Context, addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); pc.Close() }()
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			reply := buf[:n]
			if string(reply) == "whoami" {
				reply = []byte("remote=" + from.String())
			}
			pc.WriteTo(reply, from)
		}
	}()
	return nil
}

// probeUDP sends count datagrams of size random bytes to addr, one at a time,
// and checks that each comes back whole; a datagram not back within a second
// is sent again, up to three times. With size 0 it sends "whoami" once and
// prints the answer.
func probeUDP(addr string, size, count int) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 1<<16)
	if size == 0 {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("whoami")); err != nil {
			return err
		}
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		fmt.Printf("%s\n", buf[:n])
		return nil
	}
	lost := 0
	for i := range count {
		p := make([]byte, size)
		rand.Read(p)
		ok := false
		for try := 0; try < 3 && !ok; try++ {
			if try > 0 {
				lost++
			}
			if _, err := c.Write(p); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			for {
				n, err := c.Read(buf)
				if isTimeout(err) {
					break
				}
				if err != nil {
					return fmt.Errorf("datagram %d: %w", i, err)
				}
				if n != size {
					return fmt.Errorf("datagram %d: %d bytes back, sent %d", i, n, size)
				}
				if bytes.Equal(buf[:n], p) {
					ok = true
					break
				}
				// a late echo of an earlier try: read on
			}
		}
		if !ok {
			return fmt.Errorf("datagram %d of %d bytes never came back", i, size)
		}
	}
	fmt.Printf("ok: %d datagrams of %d bytes echoed whole (%d resent)\n", count, size, lost)
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

package dnsproxy

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
)

// TCP is served by our own loop too, so that a query reaches the general path
// as the bytes the client sent (miekg's server parses every query into a
// dns.Msg, rejecting what it cannot parse and re-packing the rest). Each
// connection has a goroutine that answers its queries one after another, as
// miekg's server does, with the same timeouts; connections are capped so
// that a local user cannot spend the agent's descriptors.
const (
	tcpReadTimeout  = 2 * time.Second // for the first query of a connection
	tcpIdleTimeout  = 8 * time.Second // between queries
	tcpWriteTimeout = 2 * time.Second
	tcpMaxQueries   = 128 // per connection, then it is closed
	tcpMaxConns     = 256 // per server; more are closed at once

	minAcceptRetry = 5 * time.Millisecond
	maxAcceptRetry = time.Second
)

// tcpConns tracks the open TCP connections so that Close can end them.
type tcpConns struct {
	sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

// add tracks c, unless the server is closing or at its connection cap.
func (t *tcpConns) add(c net.Conn) bool {
	t.Lock()
	defer t.Unlock()
	if t.closed || len(t.m) >= tcpMaxConns {
		return false
	}
	if t.m == nil {
		t.m = make(map[net.Conn]struct{})
	}
	t.m[c] = struct{}{}
	return true
}

func (t *tcpConns) remove(c net.Conn) {
	t.Lock()
	defer t.Unlock()
	delete(t.m, c)
}

// closeAll closes every connection and refuses new ones.
func (t *tcpConns) closeAll() {
	t.Lock()
	defer t.Unlock()
	t.closed = true
	for c := range t.m {
		c.Close()
	}
}

// serveTCP accepts connections on ln until it is closed.
func (s *Server) serveTCP(ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var pause time.Duration // after a failed Accept: 5 ms doubling to 1 s
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
					return
				}
				// Out of descriptors, say: retry after a pause instead of
				// spinning a core, and never stop serving TCP for good.
				pause = min(max(2*pause, minAcceptRetry), maxAcceptRetry)
				if s.upLog.allow() {
					s.log.Warn("accepting a DNS connection; retrying", zap.Duration("in", pause), zap.Error(err))
				}
				t := time.NewTimer(pause)
				select {
				case <-t.C:
				case <-s.ctx.Done():
					t.Stop()
					return
				}
				continue
			}
			pause = 0
			if !s.tcp.add(c) {
				c.Close()
				continue
			}
			s.wg.Add(1)
			go s.serveTCPConn(c)
		}
	}()
}

// serveTCPConn answers the queries of one connection until the client closes
// it, falls silent, or has asked tcpMaxQueries.
func (s *Server) serveTCPConn(c net.Conn) {
	defer s.wg.Done()
	defer s.tcp.remove(c)
	defer c.Close()
	var client netip.AddrPort
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		client = a.AddrPort()
	}
	timeout := tcpReadTimeout
	var lenBuf [2]byte
	for range tcpMaxQueries {
		c.SetReadDeadline(time.Now().Add(timeout))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		s.counter.queries.Add(1)
		if reply := s.answer(msg, client, true); reply != nil {
			out := make([]byte, 2, 2+len(reply))
			binary.BigEndian.PutUint16(out, uint16(len(reply)))
			c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
			if _, err := c.Write(append(out, reply...)); err != nil {
				return
			}
		}
		timeout = tcpIdleTimeout
	}
}

// answer returns the reply to query b, forwarding it and waiting for the
// upstream if need be (the TCP path, and tests).
func (s *Server) answer(b []byte, client netip.AddrPort, tcp bool) []byte {
	reply, f := s.handle(b, client, tcp, false)
	if f == nil {
		return reply
	}
	if !s.acquire() {
		return f.servFail()
	}
	defer s.release()
	return s.forward(f)
}

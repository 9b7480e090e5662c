package publisher

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/flowio"
	"github.com/ztagent/ztagent/tunnel/l7"
)

// DefaultUDPIdle is how long a publisher keeps a UDP flow without a datagram.
// It is a backstop: the agent closes a flow after its own idle timeout
// (client.udp_idle, at most an hour), which resets the stream and ends the
// flow here at once.
const DefaultUDPIdle = 65 * time.Minute

// datagramBufs hold one datagram, lent only while it moves; batchBufs the
// datagrams read from the target together.
var (
	datagramBufs = sync.Pool{New: func() any { b := make([]byte, l7.MaxDatagram); return &b }}
	batchBufs    = sync.Pool{New: func() any { b := make([]byte, 4*l7.MaxDatagram); return &b }}
)

const (
	// socketBuffer sizes the target socket's buffers: 4 MiB is 160 ms of
	// 200 Mbit/s.
	socketBuffer = 4 << 20
	// maxBatch bounds the datagrams sent to the stream in one write.
	maxBatch = 64
)

// serveUDP connects a connect-udp stream to its target with a connected UDP
// socket and relays datagrams, boundaries kept, until the flow ends or idles.
func (p *Publisher) serveUDP(w http.ResponseWriter, r *http.Request) {
	t, err := l7.ParseTarget(r)
	if err != nil {
		l7.Refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	c, status, err := p.dialNet(r.Context(), "udp", t)
	if err != nil {
		p.log.Debug("target unreachable", zap.String("target", t.String()), zap.Error(err))
		l7.Refuse(w, status, err.Error())
		return
	}
	conn := c.(*net.UDPConn)
	defer conn.Close()
	// Room for bursts while the stream is busy (capped by the system's
	// net.core.rmem_max and wmem_max).
	conn.SetReadBuffer(socketBuffer)
	conn.SetWriteBuffer(socketBuffer)
	// A reset from the PoP cancels the stream's context: closing the socket
	// ends both directions.
	stop := context.AfterFunc(r.Context(), func() { conn.Close() })
	defer stop()
	if err := l7.Accept(w, t); err != nil {
		return
	}
	idle := p.cfg.UDPIdle
	if idle <= 0 {
		idle = DefaultUDPIdle
	}
	st := relayDatagrams(l7.ServerDatagrams(w, r.Body), conn, idle)
	p.log.Debug("UDP flow ended", zap.String("target", t.String()), zap.Uint64("up", st.up.Load()),
		zap.Uint64("down", st.down.Load()), zap.Uint64("dropped", st.dropped.Load()), zap.Bool("idle", st.idle))
}

// udpFlowStats count one flow's datagrams.
type udpFlowStats struct {
	up, down, dropped atomic.Uint64
	idle              bool // ended by the idle timeout
}

// relayDatagrams copies datagrams from the stream to the target on a
// goroutine of its own and back on the caller's, until the stream ends, the
// socket is closed or nothing moved either way for idle. A datagram the
// socket refuses (too large for the path, EMSGSIZE; an ICMP error from the
// target) is dropped and counted, and the flow goes on. Neither direction
// holds a buffer while it waits.
func relayDatagrams(dc *l7.DatagramConn, conn *net.UDPConn, idle time.Duration) *udpFlowStats {
	st := &udpFlowStats{}
	var last atomic.Int64 // unix nanos of the last datagram either way
	last.Store(time.Now().UnixNano())
	var upEnded atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			upEnded.Store(true)
			conn.SetReadDeadline(time.Unix(1, 0)) // wake the other direction
		}()
		for {
			if dc.WaitRead() != nil {
				return
			}
			bp := datagramBufs.Get().(*[]byte)
			n, err := dc.Read(*bp)
			if err == nil {
				last.Store(time.Now().UnixNano())
				st.up.Add(1)
				_, err = conn.Write((*bp)[:n])
				if transient(err) {
					st.dropped.Add(1)
					err = nil
				}
			}
			datagramBufs.Put(bp)
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		dc.Close() // stops the stream's reader, wherever it is blocked
		conn.Close()
		<-done
		st.dropped.Add(dc.Dropped())
	}()
	queued := queuedFunc(conn)
	var batch [maxBatch][]byte
	wait := flowio.Waiter(conn)
	if wait == nil { // no poller wait here: Read blocks with its buffer
		wait = func() error { return nil }
	}
	for !upEnded.Load() {
		deadline := time.Unix(0, last.Load()).Add(idle)
		if !time.Now().Before(deadline) {
			st.idle = true
			return st
		}
		conn.SetReadDeadline(deadline)
		if err := wait(); err != nil {
			if timeout(err) || transient(err) {
				continue // re-check: the other direction may have moved
			}
			return st
		}
		bp := batchBufs.Get().(*[]byte)
		n, err := readBatch(conn, queued, *bp, batch[:])
		if n > 0 {
			last.Store(time.Now().UnixNano())
			st.down.Add(uint64(n))
			if _, werr := dc.WriteBatch(batch[:n]); werr != nil {
				err = werr
			}
		}
		batchBufs.Put(bp)
		switch {
		case err == nil, timeout(err), transient(err):
		default:
			return st
		}
	}
	return st
}

func timeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transient reports whether a socket error concerns one datagram, not the
// flow: one too large for the path, or an ICMP error the target's host sent
// back for an earlier one (a connected UDP socket reports it once).
func transient(err error) bool {
	return errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// readBatch reads one datagram from conn into buf and, while queued says
// more are waiting and buf has room for one of any size, those too, into
// batch. It returns how many it read; a datagram the socket refused after
// the first ends the batch without an error.
func readBatch(conn *net.UDPConn, queued func() bool, buf []byte, batch [][]byte) (int, error) {
	n := 0
	for n < len(batch) && len(buf) >= l7.MaxDatagram {
		m, err := conn.Read(buf[:l7.MaxDatagram])
		if err != nil {
			if n > 0 {
				err = nil
			}
			return n, err
		}
		batch[n], buf = buf[:m:m], buf[m:]
		n++
		if queued == nil || !queued() {
			break
		}
	}
	return n, nil
}

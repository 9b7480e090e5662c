package dnsproxy

import (
	"errors"
	"net"
	"time"

	"go.uber.org/zap"
)

// retryListener is what miekg/dns's TCP server accepts from. That server
// retries a temporary Accept error (EMFILE when the process is out of
// descriptors) at once, spinning a core until descriptors are free, and stops
// serving TCP for good on any other error. Here every error but the
// listener's closing is retried after a pause that doubles from 5 ms to 1 s,
// as net/http does, and a pause ends when the server closes.
type retryListener struct {
	net.Listener
	done <-chan struct{} // closed when the server is closing
	log  *zap.Logger
	warn rateLimiter
}

const (
	minAcceptRetry = 5 * time.Millisecond
	maxAcceptRetry = time.Second
)

func (l *retryListener) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || errors.Is(err, net.ErrClosed) {
			return c, err
		}
		pause = min(max(2*pause, minAcceptRetry), maxAcceptRetry)
		if l.warn.allow() {
			l.log.Warn("accepting a DNS connection; retrying", zap.Duration("in", pause), zap.Error(err))
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

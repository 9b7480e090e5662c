package pop

import (
	"context"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"
)

// Shutdown stops the PoP gracefully, for a restart or an upgrade: it stops
// accepting, sends GOAWAY on every client connection, so that clients open
// their new streams on a new connection (to the PoP that replaces this one)
// while the streams they have open finish here, waits until those streams
// have ended or ctx is done, then closes everything as Close does. Publisher
// connections stay up while clients drain, since the open streams run over
// them. A connection that completes its handshake just as Shutdown begins
// may miss the GOAWAY; it is closed with the rest when ctx ends.
func (p *Server) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closed || p.draining {
		p.mu.Unlock()
		return p.Close()
	}
	p.draining = true
	lns := slices.Collect(maps.Keys(p.listeners))
	p.mu.Unlock()

	start := time.Now()
	for _, ln := range lns {
		ln.Close()
	}
	// Every client connection gets GOAWAY, and closes once its streams end.
	p.h2s.Shutdown()
	drained := make(chan struct{})
	go func() {
		p.clients.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		p.log.Info("clients drained", zap.Duration("took", time.Since(start)))
	case <-ctx.Done():
		p.log.Warn("drain timed out: closing the connections left", zap.Duration("took", time.Since(start)))
	}
	err := p.Close()
	<-drained // Close ended every client connection
	return err
}

// trackClient counts a client connection about to be served, unless the PoP
// is shutting down.
func (p *Server) trackClient() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.draining {
		return false
	}
	p.clients.Add(1)
	return true
}

package pop

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/flowio"
	"github.com/ztagent/ztagent/tunnel/l7"
)

var errOpenTimeout = errors.New("publisher did not answer in time")

// serveConnect authorizes a client's CONNECT (or connect-udp), opens the
// matching stream on a publisher and relays until both ends are done. A UDP
// flow's capsules are relayed as bytes: the ends frame them.
func (p *Server) serveConnect(w http.ResponseWriter, r *http.Request, peer *x509.Certificate, log *zap.Logger) {
	t, err := l7.ParseTarget(r)
	if err != nil {
		l7.Refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	log = log.With(zap.String("target", t.Authority()), zap.String("app", t.AppID))
	allowed, err := p.cfg.Authorize(peer, t)
	pc := p.choose(r.Context(), w, "stream", t.AppID, allowed, err, log)
	if pc == nil {
		return
	}
	up, err := p.openUpstream(r.Context(), pc, t)
	if refusedUpstream(w, "stream", pc, err, log) {
		return
	}
	defer up.Close()
	// A reset from the client cancels its stream's context: reset the publisher's
	// stream too, wherever the relay is blocked.
	stop := context.AfterFunc(r.Context(), func() { up.Close() })
	defer stop()
	if err := l7.Accept(w, t); err != nil {
		return
	}
	log.Debug("stream open", zap.String("publisher", pc.name))
	relay(w, l7.Flusher(w), r.Body, up)
}

// openUpstream opens t's stream (CONNECT or connect-udp) on a publisher's connection and waits
// for its answer, at most OpenTimeout or until ctx (the client's stream) ends.
func (p *Server) openUpstream(ctx context.Context, pc *pubConn, t l7.Target) (*l7.Stream, error) {
	return askPublisher(ctx, p.cfg.OpenTimeout, func(ctx context.Context) (*l7.Stream, error) {
		return pc.cc.OpenFlow(ctx, dohAuthority, t)
	})
}

// askPublisher runs ask, a request to a publisher, within timeout or until
// ctx (the client's request) ends, and reports errOpenTimeout when it was
// the publisher that did not answer in time.
func askPublisher[T any](ctx context.Context, timeout time.Duration, ask func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errOpenTimeout)
	defer cancel()
	v, err := ask(ctx)
	if err != nil && errors.Is(context.Cause(ctx), errOpenTimeout) {
		var zero T
		return zero, errOpenTimeout
	}
	return v, err
}

// relay copies the client's bytes to the publisher on a goroutine of its own and
// the publisher's to the client on the handler's. Each end of input is passed on
// as END_STREAM and each error as a reset, so half-closes and resets travel end
// to end: when the publisher ends first, the client's response ends and its
// bytes go on to the publisher until the client ends too. Neither direction
// holds a buffer while it waits for data.
func relay(w http.ResponseWriter, flush func() error, body io.ReadCloser, up *l7.Stream) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		readErr, writeErr := flowio.Copy(up, body, l7.BodyWaiter(body), nil)
		if readErr != nil || writeErr != nil {
			up.Close() // the client reset its stream, or the publisher's is gone
			return
		}
		up.CloseWrite()
	}()
	defer func() {
		// A request body may not be read after the handler returns: stop the
		// upstream copy, wherever it is blocked, and wait for it.
		body.Close()
		up.Close()
		<-done
	}()
	if readErr, writeErr := flowio.Copy(w, up, up.WaitRead, flush); readErr != nil || writeErr != nil {
		// The publisher reset the stream (or the client went away): reset the
		// client's stream rather than ending it cleanly.
		panic(http.ErrAbortHandler)
	}
	// The publisher is done sending: end the client's response, and carry
	// the client's bytes until it is done too (or either side resets).
	if l7.CloseResponse(w) == nil {
		<-done
	}
}

// choose picks an online publisher of app among those the policy allowed (the
// stream's or DNS query's authorisation, whose error is authErr), preferring
// the selection of the device of ctx (pickFor). When the policy refused or no
// publisher is online, it has answered w and returns nil.
func (p *Server) choose(ctx context.Context, w http.ResponseWriter, what, app string, allowed []string, authErr error, log *zap.Logger) *pubConn {
	if authErr != nil {
		log.Debug(what+" denied", zap.Error(authErr))
		l7.Refuse(w, http.StatusForbidden, authErr.Error())
		return nil
	}
	pc := p.pickFor(ctx, app, allowed)
	if pc == nil {
		log.Debug("no publisher online", zap.Strings("publishers", allowed))
		l7.Refuse(w, http.StatusServiceUnavailable, "no publisher of app "+app+" is online")
	}
	return pc
}

// refusedUpstream answers w when err, from asking publisher pc for a stream or
// a DNS answer, failed, and reports whether it did. The publisher's own
// refusal (unknown host, connection refused, resolver down, timeout) is the
// client's, reason and all.
func refusedUpstream(w http.ResponseWriter, what string, pc *pubConn, err error, log *zap.Logger) bool {
	var re *l7.RefusedError
	switch {
	case err == nil:
		return false
	case errors.As(err, &re):
		l7.Refuse(w, re.Status, re.Reason)
	case errors.Is(err, errOpenTimeout):
		l7.Refuse(w, http.StatusGatewayTimeout, "publisher "+pc.name+": "+err.Error())
	default:
		log.Debug("publisher "+what+" failed", zap.String("publisher", pc.name), zap.Error(err))
		l7.Refuse(w, http.StatusBadGateway, "publisher "+pc.name+" unreachable")
	}
	return true
}

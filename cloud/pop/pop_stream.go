package pop

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l7"
)

var errOpenTimeout = errors.New("publisher did not answer in time")

// upstream is the PoP's stream to a publisher for one client stream.
type upstream struct {
	resp   *http.Response
	body   *handoffBody
	cancel context.CancelCauseFunc
}

// close ends the publisher's stream (with a reset if it is not finished) and returns
// once the transport has let go of the client's request body.
func (u *upstream) close() {
	u.resp.Body.Close()
	u.cancel(nil)
	<-u.body.closed
}

// handoffBody hands a client's request body to the publisher's stream as its request
// body, so that the transport reads the client's DATA frames directly (no pipe, no
// goroutine): EOF becomes END_STREAM and a read error a reset. Closing it is the
// transport's promise not to read it again, which the handler waits for, since a
// request may not be used after its handler returns.
type handoffBody struct {
	io.ReadCloser
	once   sync.Once
	closed chan struct{}
}

func newHandoffBody(rc io.ReadCloser) *handoffBody {
	return &handoffBody{ReadCloser: rc, closed: make(chan struct{})}
}

func (b *handoffBody) Close() error {
	b.once.Do(func() {
		b.ReadCloser.Close() // unblocks a Read in progress
		close(b.closed)
	})
	return nil
}

// serveConnect authorizes a client's CONNECT, opens the matching stream on a
// publisher and relays until both ends are done.
func (p *Server) serveConnect(w http.ResponseWriter, r *http.Request, peer *x509.Certificate, log *zap.Logger) {
	t, err := l7.ParseTarget(r)
	if err != nil {
		l7.Refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	log = log.With(zap.String("target", t.Authority()), zap.String("app", t.AppID))
	allowed, err := p.cfg.Authorize(peer, t)
	if err != nil {
		log.Debug("stream denied", zap.Error(err))
		l7.Refuse(w, http.StatusForbidden, err.Error())
		return
	}
	pc := p.pick(t.AppID, allowed)
	if pc == nil {
		log.Debug("no publisher online", zap.Strings("publishers", allowed))
		l7.Refuse(w, http.StatusServiceUnavailable, "no publisher of app "+t.AppID+" is online")
		return
	}
	log = log.With(zap.String("publisher", pc.name))
	up, err := p.openUpstream(r.Context(), pc, t, r.Body)
	switch {
	case errors.Is(err, errOpenTimeout):
		l7.Refuse(w, http.StatusGatewayTimeout, "publisher "+pc.name+": "+err.Error())
		return
	case err != nil:
		log.Debug("publisher stream failed", zap.Error(err))
		l7.Refuse(w, http.StatusBadGateway, "publisher "+pc.name+" unreachable")
		return
	}
	defer up.close()
	if up.resp.StatusCode != http.StatusOK {
		// The publisher's refusal (unknown host, connection refused, timeout) is the
		// client's refusal, reason and all.
		l7.Refuse(w, up.resp.StatusCode, up.resp.Header.Get(l7.HeaderReason))
		return
	}
	w.WriteHeader(http.StatusOK)
	flush := l7.Flusher(w)
	if err := flush(); err != nil {
		return
	}
	log.Debug("stream open")
	p.relay(w, flush, up)
}

// openUpstream opens a CONNECT stream to t on a publisher's connection, with the
// client's body as its body, and waits for its answer, at most OpenTimeout. The
// stream lives as long as ctx, the client's stream.
func (p *Server) openUpstream(ctx context.Context, pc *pubConn, t l7.Target, clientBody io.ReadCloser) (*upstream, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(p.cfg.OpenTimeout, func() { cancel(errOpenTimeout) })
	body := newHandoffBody(clientBody)
	auth := t.Authority()
	req := (&http.Request{
		Method:        http.MethodConnect,
		URL:           &url.URL{Host: auth},
		Host:          auth,
		Header:        http.Header{l7.HeaderApp: []string{t.AppID}},
		Body:          body,
		ContentLength: -1,
	}).WithContext(ctx)
	resp, err := pc.cc.RoundTrip(req)
	if !timer.Stop() {
		err = errOpenTimeout
	}
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		cancel(err)
		body.Close() // RoundTrip closes it on error; make sure before we answer
		return nil, err
	}
	return &upstream{resp: resp, body: body, cancel: cancel}, nil
}

// relay copies the publisher's bytes to the client while the transport carries the
// client's bytes to the publisher. Each end of input is passed on as an END_STREAM
// and each error as a reset, so half-closes and resets travel end to end.
func (p *Server) relay(w http.ResponseWriter, flush func() error, up *upstream) {
	if err := l7.CopyFlush(w, flush, up.resp.Body); err != nil {
		// The publisher reset the stream (or the client went away): reset the
		// client's stream rather than ending it cleanly.
		up.close()
		panic(http.ErrAbortHandler)
	}
	// Returning ends the client's stream with END_STREAM; if the client has not
	// finished sending, the server follows with RST_STREAM(NO_ERROR) (RFC 9113
	// §8.1), as net/http cannot keep reading a request after its handler returns.
}

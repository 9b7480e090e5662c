package l7

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"
)

var errOpenTimeout = errors.New("publisher did not answer in time")

// upstream is the PoP's stream to a publisher for one client stream.
type upstream struct {
	resp   *http.Response
	pr     *io.PipeReader // the request body, drained by the HTTP/2 transport
	pw     *io.PipeWriter // where the client's bytes go
	cancel context.CancelCauseFunc
}

func (u *upstream) close() {
	u.pr.Close()
	u.resp.Body.Close()
	u.cancel(nil)
}

// serveConnect authorizes a client's CONNECT, opens the matching stream on a
// publisher and relays until both ends are done.
func (p *PoP) serveConnect(w http.ResponseWriter, r *http.Request, peer *x509.Certificate, log *zap.Logger) {
	t, err := parseTarget(r)
	if err != nil {
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	log = log.With(zap.String("target", t.Authority()), zap.String("app", t.AppID))
	allowed, err := p.cfg.Authorize(peer, t)
	if err != nil {
		log.Debug("stream denied", zap.Error(err))
		refuse(w, http.StatusForbidden, err.Error())
		return
	}
	pc := p.pick(t.AppID, allowed)
	if pc == nil {
		log.Debug("no publisher online", zap.Strings("publishers", allowed))
		refuse(w, http.StatusServiceUnavailable, "no publisher of app "+t.AppID+" is online")
		return
	}
	log = log.With(zap.String("publisher", pc.name))
	up, err := p.openUpstream(r.Context(), pc, t)
	switch {
	case errors.Is(err, errOpenTimeout):
		refuse(w, http.StatusGatewayTimeout, "publisher "+pc.name+": "+err.Error())
		return
	case err != nil:
		log.Debug("publisher stream failed", zap.Error(err))
		refuse(w, http.StatusBadGateway, "publisher "+pc.name+" unreachable")
		return
	}
	defer up.close()
	if up.resp.StatusCode != http.StatusOK {
		// The publisher's refusal (unknown host, connection refused, timeout) is the
		// client's refusal, reason and all.
		refuse(w, up.resp.StatusCode, up.resp.Header.Get(HeaderReason))
		return
	}
	w.WriteHeader(http.StatusOK)
	flush := flusher(w)
	if err := flush(); err != nil {
		return
	}
	log.Debug("stream open")
	p.relay(w, flush, r, up)
}

// openUpstream opens a CONNECT stream to t on a publisher's connection and waits for
// its answer, at most OpenTimeout. The stream lives as long as ctx, the client's stream.
func (p *PoP) openUpstream(ctx context.Context, pc *pubConn, t Target) (*upstream, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(p.cfg.OpenTimeout, func() { cancel(errOpenTimeout) })
	pr, pw := io.Pipe()
	auth := t.Authority()
	req := (&http.Request{
		Method:        http.MethodConnect,
		URL:           &url.URL{Host: auth},
		Host:          auth,
		Header:        http.Header{HeaderApp: []string{t.AppID}},
		Body:          pr,
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
		pr.CloseWithError(err)
		cancel(err)
		return nil, err
	}
	return &upstream{resp: resp, pr: pr, pw: pw, cancel: cancel}, nil
}

// relay copies bytes both ways between a client stream and its publisher stream.
// Each end of input is passed on as an END_STREAM and each error as a reset, so
// half-closes and resets travel end to end.
func (p *PoP) relay(w http.ResponseWriter, flush func() error, r *http.Request, up *upstream) {
	// The handler holds a count on p.wg, so adding here cannot race with Wait.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := copyFlush(up.pw, nil, r.Body)
		// nil closes with EOF: END_STREAM to the publisher. An error resets it.
		up.pw.CloseWithError(err)
	}()
	err := copyFlush(w, flush, up.resp.Body)
	if err != nil {
		// The publisher reset the stream (or the client went away): reset the
		// client's stream rather than ending it cleanly. The deferred close resets
		// the publisher's side, and the server closes r.Body, ending the goroutine.
		panic(http.ErrAbortHandler)
	}
	// Returning ends the client's stream with END_STREAM; if the client has not
	// finished sending, the server follows with RST_STREAM(NO_ERROR) (RFC 9113
	// §8.1), as net/http cannot keep reading a request after its handler returns.
}

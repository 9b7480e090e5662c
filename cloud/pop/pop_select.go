package pop

import (
	"context"
	"crypto/x509"
	"errors"
	"maps"
	"net/http"
	"slices"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// device is the PoP's state for one device connection: the publishers the
// agent selected per app (nearest first), replaced whole by each selection.
type device struct {
	sel atomic.Pointer[l7.Selection]
}

type deviceKey struct{}

// withDevice returns the base context of a device connection's streams.
func withDevice(ctx context.Context, d *device) context.Context {
	return context.WithValue(ctx, deviceKey{}, d)
}

// selected returns the publishers the device of ctx selected for app, nearest
// first, or nil.
func selected(ctx context.Context, app string) []string {
	d, _ := ctx.Value(deviceKey{}).(*device)
	if d == nil {
		return nil
	}
	if sel := d.sel.Load(); sel != nil {
		return (*sel)[app]
	}
	return nil
}

// pickFor chooses the publisher of app for a stream or DNS query of the device
// of ctx: the first online one of its selection that the policy allows, so that
// a name's DNS answer and its flows go through the same, nearest publisher;
// when none of them is online (or the device selected none), any online
// allowed publisher, round-robin.
func (p *Server) pickFor(ctx context.Context, app string, allowed []string) *pubConn {
	if sel := selected(ctx, app); len(sel) > 0 {
		p.mu.Lock()
		for _, name := range sel {
			if slices.Contains(allowed, name) {
				if pc := p.onlineLocked(name); pc != nil {
					p.mu.Unlock()
					return pc
				}
			}
		}
		p.mu.Unlock()
	}
	return p.pick(app, allowed)
}

// onlineLocked returns the newest usable connection of publisher name, or nil.
func (p *Server) onlineLocked(name string) *pubConn {
	cs := p.pubs[name]
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].cc.CanTakeNewRequest() {
			return cs[i]
		}
	}
	return nil
}

// changed returns the first publisher of sel with no usable connection (online
// false) or the first of watch with one (online true), or "", and the channel
// closed at the next publisher's arrival or departure.
func (p *Server) changed(sel l7.Selection, watch []string) (name string, online bool, wake <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, app := range slices.Sorted(maps.Keys(sel)) {
		for _, name := range sel[app] {
			if p.onlineLocked(name) == nil {
				return name, false, p.pubWake
			}
		}
	}
	for _, name := range watch {
		if p.onlineLocked(name) != nil {
			return name, true, p.pubWake
		}
	}
	return "", false, p.pubWake
}

// publishersChangedLocked wakes every selection watching for a publisher's
// arrival or departure.
func (p *Server) publishersChangedLocked() {
	close(p.pubWake)
	p.pubWake = make(chan struct{})
}

// serveSelection keeps a device's selection for its connection and holds the
// response open until a selected publisher goes offline or a watched one comes
// online, which it says in one line before ending the stream (see tunnel/l7's
// PathSelection).
func (p *Server) serveSelection(w http.ResponseWriter, r *http.Request, log *zap.Logger) {
	d, _ := r.Context().Value(deviceKey{}).(*device)
	sel, watch, err := l7.ReadSelection(r)
	if err != nil {
		l7.Refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	d.sel.Store(&sel)
	log.Debug("selection", zap.Any("publishers", sel), zap.Strings("watch", watch))
	w.WriteHeader(http.StatusOK)
	flush := l7.Flusher(w)
	if flush() != nil {
		return
	}
	for {
		name, online, wake := p.changed(sel, watch)
		if name != "" {
			if l7.WriteStale(w, name, online) == nil {
				flush()
			}
			return
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		}
	}
}

// serveProbe forwards a device's probe to the publisher it names, within
// l7.ProbeTimeout. A publisher answering with garbage or not at all is counted
// and logged (the binaries' logger writes a repeated line once a minute), and
// the device gets 502 or 504.
func (p *Server) serveProbe(w http.ResponseWriter, r *http.Request, peer *x509.Certificate, log *zap.Logger) {
	app, pub, err := l7.ParseProbe(r)
	if err != nil {
		l7.Refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	pc := p.publisherFor(w, peer, app, pub)
	if pc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), l7.ProbeTimeout)
	defer cancel()
	err = pc.cc.Probe(ctx, dohAuthority, app, pub)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case r.Context().Err() != nil:
		// The device gave up; nothing to answer.
	case errors.Is(err, context.DeadlineExceeded):
		p.probeFailures.Add(1)
		log.Warn("publisher did not answer a probe in time", zap.String("publisher", pub), zap.Duration("timeout", l7.ProbeTimeout))
		l7.Refuse(w, http.StatusGatewayTimeout, "publisher "+pub+" did not answer the probe in time")
	default:
		p.probeFailures.Add(1)
		log.Warn("publisher answered a probe with garbage", zap.String("publisher", pub), zap.Error(err))
		l7.Refuse(w, http.StatusBadGateway, "publisher "+pub+" answered the probe with garbage")
	}
}

// publisherFor returns the connection of publisher pub for a device's probe
// or speed test of app: the device may use app, pub serves it and is
// online. Otherwise it has answered w and returns nil.
func (p *Server) publisherFor(w http.ResponseWriter, peer *x509.Certificate, app, pub string) *pubConn {
	allowed, err := p.cfg.AuthorizeApp(peer, app)
	if err == nil && !slices.Contains(allowed, pub) {
		err = errors.New("publisher " + pub + " does not serve app " + app)
	}
	if err != nil {
		l7.Refuse(w, http.StatusForbidden, err.Error())
		return nil
	}
	p.mu.Lock()
	pc := p.onlineLocked(pub)
	p.mu.Unlock()
	if pc == nil {
		l7.Refuse(w, http.StatusServiceUnavailable, "publisher "+pub+" is not online")
	}
	return pc
}

// serveSpeed forwards a device's speed test to the publisher it names and
// relays it both ways (see tunnel/l7's PathSpeed).
func (p *Server) serveSpeed(w http.ResponseWriter, r *http.Request, peer *x509.Certificate, log *zap.Logger) {
	app, pub, dir, n, err := l7.ParseSpeed(r)
	if err != nil {
		l7.Refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	pc := p.publisherFor(w, peer, app, pub)
	if pc == nil {
		return
	}
	up, err := askPublisher(r.Context(), p.cfg.OpenTimeout, func(ctx context.Context) (*l7.Stream, error) {
		return pc.cc.OpenSpeed(ctx, dohAuthority, app, pub, dir, n)
	})
	if refusedUpstream(w, "speed test", pc, err, log) {
		return
	}
	defer up.Close()
	stop := context.AfterFunc(r.Context(), func() { up.Close() })
	defer stop()
	w.WriteHeader(http.StatusOK)
	flush := l7.Flusher(w)
	if flush() != nil {
		return
	}
	log.Debug("speed test", zap.String("publisher", pub), zap.String("direction", dir), zap.Int64("bytes", n))
	relay(w, flush, r.Body, up)
}

// ProbeFailures counts the probes a publisher answered with garbage or not in
// time.
func (p *Server) ProbeFailures() uint64 { return p.probeFailures.Load() }

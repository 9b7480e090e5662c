package pop

import (
	"context"
	"crypto/x509"
	"net/http"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// serveEcho authorizes a client's ICMP echo, forwards it to a publisher of its
// app and relays the real reply (or the publisher's refusal: no reply, host
// unreachable). The PoP never answers an echo itself.
func (p *Server) serveEcho(w http.ResponseWriter, r *http.Request, peer *x509.Certificate, log *zap.Logger) {
	req, status, err := l7.ParseEchoRequest(r)
	if err != nil {
		l7.Refuse(w, status, err.Error())
		return
	}
	log = log.With(zap.String("echo", req.Host), zap.String("app", req.AppID))
	allowed, err := p.cfg.AuthorizeEcho(peer, req.AppID, req.Host)
	pc := p.choose(r.Context(), w, "echo", req.AppID, allowed, err, log)
	if pc == nil {
		return
	}
	rep, err := p.forwardEcho(r.Context(), pc, req)
	if refusedUpstream(w, "echo", pc, err, log) {
		return
	}
	l7.WriteEchoReply(w, rep)
}

// forwardEcho sends req to a publisher and waits for its answer, within
// OpenTimeout.
func (p *Server) forwardEcho(ctx context.Context, pc *pubConn, req l7.EchoRequest) (l7.EchoReply, error) {
	return askPublisher(ctx, p.cfg.OpenTimeout, func(ctx context.Context) (l7.EchoReply, error) {
		return pc.cc.Echo(ctx, req)
	})
}

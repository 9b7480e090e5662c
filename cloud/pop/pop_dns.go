package pop

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// serveDNS authorizes a client's DoH query, forwards it to a publisher of its app
// and relays the answer.
func (p *Server) serveDNS(w http.ResponseWriter, r *http.Request, peer *x509.Certificate, log *zap.Logger) {
	q, status, err := l7.ParseDNSRequest(r)
	if err != nil {
		l7.Refuse(w, status, err.Error())
		return
	}
	log = log.With(zap.String("qname", q.QName), zap.String("app", q.AppID))
	allowed, err := p.cfg.AuthorizeDNS(peer, q.AppID, q.QName)
	if err != nil {
		log.Debug("DNS query denied", zap.Error(err))
		l7.Refuse(w, http.StatusForbidden, err.Error())
		return
	}
	pc := p.pick(q.AppID, allowed)
	if pc == nil {
		log.Debug("no publisher online", zap.Strings("publishers", allowed))
		l7.Refuse(w, http.StatusServiceUnavailable, "no publisher of app "+q.AppID+" is online")
		return
	}
	answer, err := p.forwardDNS(r.Context(), pc, q)
	var re *l7.RefusedError
	switch {
	case errors.As(err, &re):
		// The publisher's refusal (resolver down, timed out) is the client's.
		l7.Refuse(w, re.Status, re.Reason)
	case errors.Is(err, errOpenTimeout):
		l7.Refuse(w, http.StatusGatewayTimeout, "publisher "+pc.name+": "+err.Error())
	case err != nil:
		log.Debug("publisher DNS query failed", zap.String("publisher", pc.name), zap.Error(err))
		l7.Refuse(w, http.StatusBadGateway, "publisher "+pc.name+" unreachable")
	default:
		l7.WriteDNSAnswer(w, answer)
	}
}

// dohAuthority is the :authority of the PoP's requests to publishers, which
// serve one connection each and do not look at it.
const dohAuthority = "publisher.invalid"

// forwardDNS sends q to a publisher and reads its answer, within OpenTimeout.
func (p *Server) forwardDNS(ctx context.Context, pc *pubConn, q l7.DNSQuery) ([]byte, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, p.cfg.OpenTimeout, errOpenTimeout)
	defer cancel()
	answer, err := pc.cc.ResolveDNS(ctx, dohAuthority, q.AppID, q.Body)
	if err != nil && errors.Is(context.Cause(ctx), errOpenTimeout) {
		return nil, errOpenTimeout
	}
	return answer, err
}

package l7

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"

	"go.uber.org/zap"
)

// serveDNS authorizes a client's DoH query, forwards it to a publisher of its app
// and relays the answer.
func (p *PoP) serveDNS(w http.ResponseWriter, r *http.Request, peer *x509.Certificate, log *zap.Logger) {
	q, status, err := parseDNSRequest(r)
	if err != nil {
		refuse(w, status, err.Error())
		return
	}
	log = log.With(zap.String("qname", q.qname), zap.String("app", q.appID))
	allowed, err := p.cfg.AuthorizeDNS(peer, q.appID, q.qname)
	if err != nil {
		log.Debug("DNS query denied", zap.Error(err))
		refuse(w, http.StatusForbidden, err.Error())
		return
	}
	pc := p.pick(q.appID, allowed)
	if pc == nil {
		log.Debug("no publisher online", zap.Strings("publishers", allowed))
		refuse(w, http.StatusServiceUnavailable, "no publisher of app "+q.appID+" is online")
		return
	}
	answer, err := p.forwardDNS(r.Context(), pc, q)
	var re *RefusedError
	switch {
	case errors.As(err, &re):
		// The publisher's refusal (resolver down, timed out) is the client's.
		refuse(w, re.Status, re.Reason)
	case errors.Is(err, errOpenTimeout):
		refuse(w, http.StatusGatewayTimeout, "publisher "+pc.name+": "+err.Error())
	case err != nil:
		log.Debug("publisher DNS query failed", zap.String("publisher", pc.name), zap.Error(err))
		refuse(w, http.StatusBadGateway, "publisher "+pc.name+" unreachable")
	default:
		writeDNSAnswer(w, answer)
	}
}

// forwardDNS sends q to a publisher and reads its answer, within OpenTimeout.
func (p *PoP) forwardDNS(ctx context.Context, pc *pubConn, q dnsQuery) ([]byte, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, p.cfg.OpenTimeout, errOpenTimeout)
	defer cancel()
	resp, err := pc.cc.RoundTrip(newDNSRequest(ctx, dohAuthority, q.appID, q.body))
	var answer []byte
	if err == nil {
		answer, err = readDNSResponse(resp)
	}
	if err != nil && errors.Is(context.Cause(ctx), errOpenTimeout) {
		return nil, errOpenTimeout
	}
	return answer, err
}

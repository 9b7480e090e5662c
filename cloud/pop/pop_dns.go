package pop

import (
	"context"
	"crypto/x509"
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
	pc := p.choose(r.Context(), w, "DNS query", q.AppID, allowed, err, log)
	if pc == nil {
		return
	}
	answer, err := p.forwardDNS(r.Context(), pc, q)
	if refusedUpstream(w, "DNS query", pc, err, log) {
		return
	}
	l7.WriteDNSAnswer(w, answer)
}

// dohAuthority is the :authority of the PoP's requests to publishers, which
// serve one connection each and do not look at it.
const dohAuthority = "publisher.invalid"

// forwardDNS sends q to a publisher and reads its answer, within OpenTimeout.
func (p *Server) forwardDNS(ctx context.Context, pc *pubConn, q l7.DNSQuery) ([]byte, error) {
	return askPublisher(ctx, p.cfg.OpenTimeout, func(ctx context.Context) ([]byte, error) {
		return pc.cc.ResolveDNS(ctx, dohAuthority, q.AppID, q.Body)
	})
}

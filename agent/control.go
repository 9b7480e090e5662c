package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
)

// The local control API: HTTP+JSON over the control socket (ctlapi has the
// wire types). Reads are open to every local user; calls that change the
// agent need root/administrator, checked from the socket peer's credentials.
// It lives from Start to Close, across restarts, so `ztdiag status` shows a
// restart as it happens. Since any local user may connect, connections are
// capped per user and in total with a share kept for administrators, none
// is taken when descriptors run short (platform.LimitControl), and idle or
// slow clients are timed out (ControlLimits).

type credKey struct{}

// controlServer is the control API's HTTP server on its socket.
type controlServer struct {
	srv    *http.Server
	served chan struct{} // closed when Serve has returned
	log    *zap.Logger
}

func (a *Agent) startControl(r *run) (*controlServer, error) {
	ln, err := platform.ListenControl(a.cfg.SocketPath)
	if err != nil {
		return nil, err
	}
	lim := a.cfg.Control.withDefaults()
	log := a.log.Named("control")
	ln = platform.LimitControl(ln, lim.Conns, refuseControl, log)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ctlapi.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("POST "+ctlapi.PathMatch, a.serveMatch)
	mux.HandleFunc("POST "+ctlapi.PathEnroll, admin(waits(fixed(reenrollDeadline), func(w http.ResponseWriter, req *http.Request) {
		a.serveReenroll(w, req, r)
	})))
	mux.HandleFunc("POST "+ctlapi.PathSync, admin(waits(fixed(syncDeadline), a.serveSync)))
	mux.HandleFunc("GET "+ctlapi.PathLog, a.serveLog)
	mux.HandleFunc("POST "+ctlapi.PathLog, admin(a.serveSetLog))
	mux.HandleFunc("POST "+ctlapi.PathBundle, admin(a.serveBundle))
	mux.HandleFunc("POST "+ctlapi.PathSteering, admin(a.serveSteering))
	mux.HandleFunc("POST "+ctlapi.PathCapture, admin(a.serveCapture))
	mux.HandleFunc("POST "+ctlapi.PathUplinkCapture, admin(a.serveUplinkCapture))
	mux.HandleFunc("POST "+ctlapi.PathSpeed, admin(waits(fixed(speedTestTimeout+time.Minute), a.serveSpeed)))
	// Profiles for diagnosing a live agent (root only):
	//   curl --unix-socket /run/ztagent/ztagent.sock http://x/debug/pprof/profile?seconds=10
	mux.HandleFunc("/debug/pprof/", admin(waits(profileDeadline, pprof.Index)))
	mux.HandleFunc("/debug/pprof/profile", admin(waits(profileDeadline, pprof.Profile)))
	mux.HandleFunc("/debug/pprof/trace", admin(waits(profileDeadline, pprof.Trace)))
	//   curl --unix-socket … -X POST 'http://x/debug/memprofilerate?rate=524288'
	// (heap profiling is off by default: HeapProfilingOff)
	mux.HandleFunc("POST /debug/memprofilerate", admin(serveMemProfileRate))
	srv := newControlServer(lim, mux, log)
	// Handlers' contexts end when Close begins: an enrollment or a profile
	// in progress gives up, so Close's wait is short.
	srv.BaseContext = func(net.Listener) context.Context { return r.ctx }
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		cred := platform.Cred{UID: -1, PID: -1}
		if cc, ok := c.(*platform.ControlConn); ok {
			cred = cc.Cred
		}
		return context.WithValue(ctx, credKey{}, cred)
	}
	c := &controlServer{srv: srv, served: make(chan struct{}), log: a.log}
	go func() {
		defer close(c.served)
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("control API", zap.Error(err))
		}
	}()
	return c, nil
}

// shutdown stops accepting calls and returns a channel that is closed once
// the server and every handler have returned (Shutdown waits for active
// connections, which are active until their handler returns) and the socket
// is removed.
func (c *controlServer) shutdown() <-chan struct{} {
	done := make(chan struct{})
	go func() { // ends with the handlers; the supervisor waits on done
		defer close(done)
		if err := c.srv.Shutdown(context.Background()); err != nil {
			c.log.Warn("control API shutdown", zap.Error(err))
		}
		<-c.served
	}()
	return done
}

// admin wraps h so that only root/administrators may call it.
func admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cred, _ := r.Context().Value(credKey{}).(platform.Cred)
		if !cred.Admin {
			writeError(w, http.StatusForbidden, errors.New("this command needs root or administrator rights"))
			return
		}
		h(w, r)
	}
}

// serveReenroll is `ztdiag -e`. The answer comes once the new enrollment is
// saved, before the restart.
func (a *Agent) serveReenroll(w http.ResponseWriter, req *http.Request, r *run) {
	body, err := decodeReenroll(http.MaxBytesReader(w, req.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	id, err := a.reenroll(req.Context(), r, body.Args)
	if err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, ctlapi.EnrollmentStatus{Tenant: id.Tenant, User: id.User, DeviceID: id.DeviceID,
		TenantURL: id.TenantURL, CertExpires: id.Expires()})
}

// serveSync is `ztdiag update`: a config sync now, by the parts' sync loop.
func (a *Agent) serveSync(w http.ResponseWriter, req *http.Request) {
	p, _ := a.current()
	if p == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("the agent is not running"))
		return
	}
	if err := p.syncRequest(req.Context()); err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, p.configStatus())
}

func (a *Agent) serveMatch(w http.ResponseWriter, req *http.Request) {
	var body ctlapi.MatchRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 64<<10)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	p, _ := a.current()
	if p == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("agent has no config yet"))
		return
	}
	writeJSON(w, http.StatusOK, ctlapi.Explain(p.snap.Load(), p.stubs, body))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, ctlapi.ErrorResponse{Error: fmt.Sprint(err)})
}

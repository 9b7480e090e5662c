package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ztagent/ztagent/agent/ctlapi"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/platform"
)

// The local control API: HTTP+JSON over the control socket. Reads are open to
// every local user; calls that change the agent need root/administrator,
// checked from the socket peer's credentials.

type credKey struct{}

func (a *Agent) startControl() (func() error, error) {
	ln, err := platform.ListenControl(a.cfg.SocketPath)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("POST /v1/match", a.serveMatch)
	mux.HandleFunc("POST /v1/enroll", a.admin(a.serveReenroll))
	mux.HandleFunc("POST /v1/sync", a.admin(func(w http.ResponseWriter, r *http.Request) {
		if err := a.syncOnce(r.Context()); err != nil {
			writeError(w, http.StatusBadGateway, err)
			return
		}
		writeJSON(w, http.StatusOK, a.Status().Config)
	}))
	// Profiles for diagnosing a live agent (root only):
	//   curl --unix-socket /run/ztagent/ztagent.sock http://x/debug/pprof/profile?seconds=10
	mux.HandleFunc("/debug/pprof/", a.admin(pprof.Index))
	mux.HandleFunc("/debug/pprof/profile", a.admin(pprof.Profile))
	mux.HandleFunc("/debug/pprof/trace", a.admin(pprof.Trace))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			cred, err := platform.PeerCred(c)
			if err != nil {
				cred = platform.Cred{UID: -1, PID: -1}
			}
			return context.WithValue(ctx, credKey{}, cred)
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("control API", zap.Error(err))
		}
	}()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		<-done
		return err
	}, nil
}

// admin wraps h so that only root/administrators may call it.
func (a *Agent) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cred, _ := r.Context().Value(credKey{}).(platform.Cred)
		if !cred.Admin {
			writeError(w, http.StatusForbidden, errors.New("this command needs root or administrator rights"))
			return
		}
		h(w, r)
	}
}

// serveReenroll is `ztdiag -e`: enroll again with new parameters, then
// restart. The answer is sent before the restart replaces this server.
func (a *Agent) serveReenroll(w http.ResponseWriter, r *http.Request) {
	var req ctlapi.ReenrollRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	id, err := a.Reenroll(r.Context(), req.Args)
	if err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, ctlapi.EnrollmentStatus{Tenant: id.Tenant, User: id.User, DeviceID: id.DeviceID, TenantURL: id.TenantURL, CertExpires: id.Expires()})
}

func (a *Agent) serveMatch(w http.ResponseWriter, r *http.Request) {
	var req ctlapi.MatchRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	snap := a.snap.Load()
	if snap == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("agent has no config yet"))
		return
	}
	writeJSON(w, http.StatusOK, ctlapi.Explain(snap, a.stubs, req))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprint(err)})
}

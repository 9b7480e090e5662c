package enroll

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// Enroll enrolls by the method the parameters select: userkey= → email
// invitation (EnrollInvite), installmode=IDP → browser sign-in (EnrollIdP,
// which calls openBrowser), else UPN (EnrollUPN). For the pre-logon identity use
// EnrollPreLogon. The result is not yet saved: call Save.
func Enroll(ctx context.Context, p Params, openBrowser func(url string) error, log *zap.Logger) (*Identity, error) {
	switch {
	case p.UserKey != "":
		return EnrollInvite(ctx, p, log)
	case p.InstallMode == "IDP":
		if openBrowser == nil {
			return nil, errorf(ReasonUnsupportedInstall, nil,
				"installmode=IDP signs in through a browser, which this process cannot open — run the enrollment in the user's desktop session")
		}
		return EnrollIdP(ctx, p, openBrowser, log)
	}
	return EnrollUPN(ctx, p, log)
}

// EnrollPreLogon enrolls the pre-logon identity (prelogonuser=), used before
// anyone logs in. No user is present to sign in, so even with installmode=IDP
// it enrolls like UPN enrollment: org key (token=) and, when the tenant enforces
// secure enrollment, the auth token. The result is not yet saved: call Save
// (into the pre-logon identity's own state directory).
func EnrollPreLogon(ctx context.Context, p Params, log *zap.Logger) (*Identity, error) {
	if p.PreLogonUser == "" {
		return nil, errorf(ReasonBadParameter, nil, "prelogonuser= is not set: pass the pre-logon identity's UPN")
	}
	if _, err := checkUPNParam(p.PreLogonUser); err != nil {
		return nil, errorf(ReasonBadParameter, err, "prelogonuser=: %v", err)
	}
	p.UPN, p.InstallMode = p.PreLogonUser, ""
	return EnrollUPN(ctx, p, log)
}

// idpCallbackPath is the loopback redirect's path.
const idpCallbackPath = "/ztagent/idp/callback"

// idpDefaultWait bounds the wait for the user's sign-in when ctx has no deadline.
const idpDefaultWait = 5 * time.Minute

// EnrollIdP enrolls this device through the tenant's sign-in page, as a native
// app (RFC 8252) with PKCE S256: it listens on 127.0.0.1:0, opens the system
// browser (openBrowser, e.g. platform.OpenBrowser) on the tenant's authorize URL
// with that loopback redirect, waits for the browser to come back with a
// one-time code and the same state, and exchanges code + verifier + CSR for the
// device certificate. No auth token is needed unless the tenant's token set
// should select an encrypted initial config. The wait ends with ctx (5 minutes
// when ctx has no deadline). The result is not yet saved: call Save.
func EnrollIdP(ctx context.Context, p Params, openBrowser func(url string) error, log *zap.Logger) (*Identity, error) {
	base, err := checkTokenParams(p)
	if err != nil {
		return nil, err
	}
	apiRoots, apiPEM, err := loadCACert(p.CACert)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, idpDefaultWait)
		defer cancel()
	}
	verifier, state := tenantapi.RandomB64URL(32), tenantapi.RandomB64URL(32)
	lb, err := newLoopback(state)
	if err != nil {
		return nil, errorf(tenantapi.ReasonInternal, err, "cannot listen on 127.0.0.1 for the sign-in redirect: %v", err)
	}
	defer lb.close()
	q := url.Values{"response_type": {"code"}, "client_id": {tenantapi.IdPClientID}, "redirect_uri": {lb.redirect},
		"code_challenge": {tenantapi.PKCES256(verifier)}, "code_challenge_method": {"S256"}, "state": {state}}
	if p.UPN != "" {
		q.Set("login_hint", p.UPN)
	}
	log.Info("enrolling", zap.String("method", "idp"), zap.String("url", base), zap.String("redirect", lb.redirect),
		zap.Stringer("params", p))
	if err := openBrowser(base + "/v1/idp/authorize?" + q.Encode()); err != nil {
		return nil, errorf(ReasonSignInFailed, err,
			"cannot open the system browser for the tenant's sign-in page (%v) — run the enrollment in the logged-in user's desktop session", err)
	}
	code, err := lb.wait(ctx)
	if err != nil {
		return nil, err
	}
	key, csr, err := tenantapi.NewKey("idp device")
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	req := tenantapi.IdPTokenRequest{ClientID: tenantapi.IdPClientID, Code: code, CodeVerifier: verifier, RedirectURI: lb.redirect,
		DeviceName: deviceName(), CSR: csr, EnrollAuthToken: string(p.EnrollAuthToken)}
	return enrollDevice(ctx, base, "/v1/idp/token", &req, key, apiRoots, apiPEM, p, log)
}

// loopback is the redirect listener: one HTTP server on 127.0.0.1:0 that
// accepts exactly one callback carrying the expected state.
type loopback struct {
	ln       net.Listener
	srv      *http.Server
	redirect string
	wg       sync.WaitGroup
	state    string
	once     sync.Once
	result   chan callbackResult
}

type callbackResult struct {
	code string
	err  *Error
}

func newLoopback(state string) (*loopback, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lb := &loopback{ln: ln, state: state, result: make(chan callbackResult, 1),
		redirect: "http://" + ln.Addr().String() + idpCallbackPath}
	mux := http.NewServeMux()
	mux.HandleFunc(idpCallbackPath, lb.callback)
	lb.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	lb.wg.Add(1)
	go func() {
		defer lb.wg.Done()
		lb.srv.Serve(ln)
	}()
	return lb, nil
}

// close stops the listener and waits for its goroutine; idempotent.
func (lb *loopback) close() {
	lb.srv.Close()
	lb.wg.Wait()
}

func (lb *loopback) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(lb.state)) != 1 {
		// Not our sign-in (another tab, a forged link): ignore it, keep waiting.
		writeCallbackPage(w, http.StatusBadRequest, "This sign-in does not belong to the enrollment in progress.")
		return
	}
	res := callbackResult{code: q.Get("code")}
	switch {
	case q.Get("error") != "":
		res = callbackResult{err: errorf(ReasonSignInFailed, nil,
			"the tenant's sign-in page refused the sign-in (%s) — sign in with a user of this tenant, then re-run the enrollment", sanitize(truncate(q.Get("error"))))}
	case res.code == "":
		res = callbackResult{err: errorf(ReasonSignInFailed, nil,
			"the browser came back from the tenant's sign-in page without a code — re-run the enrollment")}
	}
	delivered := false
	lb.once.Do(func() { lb.result <- res; delivered = true })
	if !delivered {
		writeCallbackPage(w, http.StatusConflict, "This sign-in was already completed.")
		return
	}
	if res.err != nil {
		writeCallbackPage(w, http.StatusOK, "Sign-in failed; see the agent for details.")
		return
	}
	writeCallbackPage(w, http.StatusOK, "Signed in. This device is enrolling; you can close this window.")
}

func writeCallbackPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><html><head><meta charset=\"utf-8\"><title>ztagent</title></head><body><p id=\"result\">%s</p></body></html>\n", html.EscapeString(msg))
}

// wait returns the code of the first callback with the right state.
func (lb *loopback) wait(ctx context.Context) (string, error) {
	select {
	case res := <-lb.result:
		if res.err != nil {
			return "", res.err
		}
		return res.code, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", errorf(ReasonSignInFailed, ctx.Err(),
				"nobody completed the tenant's sign-in page in the browser in time — re-run the enrollment and sign in")
		}
		return "", errorf(ReasonSignInFailed, ctx.Err(), "enrollment was cancelled while waiting for the sign-in")
	}
}

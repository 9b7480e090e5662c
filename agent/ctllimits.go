package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/platform"
)

// ControlLimits bound the control API's clients, so that no local user can
// hold the agent's descriptors or its handlers: connection caps (per user, in
// total, a share kept for administrators, descriptors kept for the data path)
// and timeouts. Zero fields take the defaults.
type ControlLimits struct {
	Conns platform.ControlLimits
	// IdleTimeout closes a connection that waits for its next request (10 s).
	IdleTimeout time.Duration
	// HeaderTimeout closes one whose request headers take longer (5 s).
	HeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a whole request, body included (10 s).
	ReadTimeout time.Duration
	// WriteTimeout bounds a call's handling and answer (30 s), except for the
	// calls that wait by design: `ztdiag update` (2 min), `ztdiag -e`, which
	// may wait for a sign-in in the browser (10 min), and profiles (their
	// duration and 30 s more).
	WriteTimeout time.Duration
}

// The defaults of ControlLimits, and the deadlines of the calls that wait by
// design.
const (
	defaultCtlIdle   = 10 * time.Second
	defaultCtlHeader = 5 * time.Second
	defaultCtlRead   = 10 * time.Second
	defaultCtlWrite  = 30 * time.Second
	// maxCtlHeader bounds a request's headers; ztdiag's are a few hundred
	// bytes.
	maxCtlHeader = 16 << 10

	syncDeadline     = 2 * time.Minute  // a sync waits for one in progress, then fetches (30 s each)
	reenrollDeadline = 10 * time.Minute // the browser sign-in alone may take 5
	profileSlack     = 30 * time.Second // beyond a profile's ?seconds=
)

func (l ControlLimits) withDefaults() ControlLimits {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&l.IdleTimeout, defaultCtlIdle)
	set(&l.HeaderTimeout, defaultCtlHeader)
	set(&l.ReadTimeout, defaultCtlRead)
	set(&l.WriteTimeout, defaultCtlWrite)
	return l
}

// newControlServer is the control API's HTTP server, with l's timeouts (l
// has its defaults). The write deadline is set per call, by withDeadline,
// rather than by Server.WriteTimeout: the calls that wait by design move it
// (waits), and pprof refuses a profile longer than a WriteTimeout.
func newControlServer(l ControlLimits, h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           withDeadline(l.WriteTimeout, h),
		ReadHeaderTimeout: l.HeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    maxCtlHeader,
		ErrorLog:          zap.NewStdLog(log),
	}
}

// withDeadline gives every call d to be handled and answered.
func withDeadline(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		h.ServeHTTP(w, r)
	})
}

// waits gives a call that waits by design (an enrollment, a profile) the
// deadline d(r) from now, to write its answer and to read: net/http's read
// of the next request, which starts once the body is read, would otherwise
// end the call's context at ReadTimeout.
func waits(d func(*http.Request) time.Duration, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		until := time.Now().Add(d(r))
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(until)
		rc.SetWriteDeadline(until)
		h(w, r)
	}
}

func fixed(d time.Duration) func(*http.Request) time.Duration {
	return func(*http.Request) time.Duration { return d }
}

// profileDeadline is a profile's ?seconds= (pprof's default of 30 when
// absent) and profileSlack more.
func profileDeadline(r *http.Request) time.Duration {
	secs, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
	if err != nil || secs <= 0 || secs > (24*time.Hour).Seconds() {
		secs = 30
	}
	return time.Duration(secs*float64(time.Second)) + profileSlack
}

// refuseControl answers a client whose connection the caps refused (see
// platform.LimitControl) with 503 and the reason, after its request has
// arrived (or the conn's short deadline has passed), so that the client
// reads the answer to its request rather than an unsolicited one.
func refuseControl(c net.Conn, why error) {
	http.ReadRequest(bufio.NewReaderSize(c, 4096)) // only waits; the answer is the same
	body, _ := json.Marshal(ctlapi.ErrorResponse{Error: why.Error() + "; try again later"})
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		len(body), body)
}

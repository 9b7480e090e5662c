package l7

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"
)

// Publisher selection on the tunnel. The agent measures the RTT through the PoP
// to a publisher with a probe, GET PathProbe naming the app (Zt-App) and the
// publisher (Zt-Publisher): the PoP checks that the device may use the app and
// that the publisher serves it, forwards the same request on that publisher's
// connection, and answers 204 No Content when the publisher did; the
// publisher answers 204 at once. Any other answer from the publisher is
// garbage (ErrBadProbeAnswer, 502 to the agent), no answer within ProbeTimeout
// is 504, and a publisher that is not online is 503.
//
// The agent then POSTs its selection to PathSelection as JSON
// ({"apps":{"<app>":["<nearest publisher>", …]},"watch":["<publisher>", …]}:
// per app the publishers to use, nearest first, and the publishers that were
// not online when measured). The PoP keeps it for the connection, answers 200
// and keeps the response open: when a selected publisher goes offline it
// writes one line "stale <publisher>", when a watched one comes online
// "online <publisher>", and ends the stream, which tells the agent to measure
// again. The next POST replaces the selection.
const (
	PathProbe       = "/probe"
	PathSelection   = "/selection"
	HeaderPublisher = "Zt-Publisher"

	// ProbeTimeout bounds the PoP's wait for a publisher's answer to a probe.
	ProbeTimeout = 2 * time.Second

	maxSelectionBody = 1 << 20
)

// ErrBadProbeAnswer is a probe answered with something other than an empty 204.
var ErrBadProbeAnswer = errors.New("l7: probe answered with garbage")

// Selection is, per app ID, the publishers the PoP should use for this device,
// nearest first.
type Selection map[string][]string

type selectionWire struct {
	Apps  Selection `json:"apps"`
	Watch []string  `json:"watch,omitempty"`
}

// Probe asks the PoP to forward a probe to publisher (a publisher of app) and
// returns the time until its answer: the RTT from the agent through the PoP to
// the publisher and back. Errors are as for Open; a refusal is a *RefusedError
// (503: the publisher is not online; 502 or 504: it answered with garbage or
// not in time).
func (c *Client) Probe(ctx context.Context, app, publisher string) (time.Duration, error) {
	tc := c.cur.Load()
	if tc == nil || !tc.cc.CanTakeNewRequest() {
		return 0, ErrNotConnected
	}
	start := time.Now()
	if err := tc.cc.Probe(ctx, "pop.invalid", app, publisher); err != nil {
		return 0, c.requestError(tc, "probe "+publisher, err)
	}
	return time.Since(start), nil
}

// Probe sends a probe for publisher of app to authority and waits, within ctx,
// for its empty 204 answer. A refusal is a *RefusedError; any other answer is
// ErrBadProbeAnswer.
func (cc *ClientConn) Probe(ctx context.Context, authority, app, publisher string) error {
	s, err := cc.openStream(ctx, []hpack.HeaderField{
		{Name: ":method", Value: http.MethodGet},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: authority},
		{Name: ":path", Value: PathProbe},
		{Name: "zt-app", Value: app},
		{Name: "zt-publisher", Value: publisher},
	})
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	werr := s.CloseWrite()
	status, h, err := s.awaitResponse(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil && werr != nil:
		return werr
	case err != nil:
		return err
	case status >= 400:
		return &RefusedError{Status: status, Reason: h.Get(HeaderReason)}
	case status != http.StatusNoContent:
		return fmt.Errorf("%w: status %d", ErrBadProbeAnswer, status)
	}
	var b [1]byte
	if n, err := s.Read(b[:]); n > 0 || err != io.EOF {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: a body after 204", ErrBadProbeAnswer)
	}
	return nil
}

// IsProbe reports whether r is a probe, which the PoP and the publisher serve.
func IsProbe(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL != nil && r.URL.Path == PathProbe
}

// ParseProbe reads the app and the publisher a probe names.
func ParseProbe(r *http.Request) (app, publisher string, err error) {
	app, publisher = r.Header.Get(HeaderApp), r.Header.Get(HeaderPublisher)
	if app == "" || publisher == "" {
		return "", "", errors.New("a probe needs " + HeaderApp + " and " + HeaderPublisher + " headers")
	}
	return app, publisher, nil
}

// AnswerProbe is the publisher's answer to a probe.
func AnswerProbe(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// IsSelection reports whether r is a device's selection, which the PoP serves.
func IsSelection(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL != nil && r.URL.Path == PathSelection
}

// ReadSelection reads a selection request's body (at most 1 MiB of JSON):
// the selection and the publishers to watch for.
func ReadSelection(r *http.Request) (sel Selection, watch []string, err error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxSelectionBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read selection: %w", err)
	}
	if len(b) > maxSelectionBody {
		return nil, nil, errors.New("selection larger than 1 MiB")
	}
	var w selectionWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, nil, fmt.Errorf("malformed selection: %w", err)
	}
	if w.Apps == nil {
		w.Apps = Selection{}
	}
	return w.Apps, w.Watch, nil
}

// WriteStale tells the agent, on its selection's open response, that
// publisher went offline (online false: a selected one) or came online (a
// watched one).
func WriteStale(w io.Writer, publisher string, online bool) error {
	what := "stale "
	if online {
		what = "online "
	}
	_, err := io.WriteString(w, what+sanitizeReason(publisher)+"\n")
	return err
}

// SelectionSync is a selection the PoP holds for this connection.
type SelectionSync struct {
	s      *Stream
	stale  chan struct{}
	reason string // what the PoP said, once stale is closed
	wg     sync.WaitGroup
}

// Stale is closed when the selection is stale: the PoP said a selected
// publisher went offline, or the stream (or the connection) ended.
func (ss *SelectionSync) Stale() <-chan struct{} { return ss.stale }

// Reason says why Stale was closed; call it only after.
func (ss *SelectionSync) Reason() string { return ss.reason }

// Close ends the selection's stream (the PoP keeps the selection until the
// next one or the connection's end) and waits for its reader.
func (ss *SelectionSync) Close() {
	ss.s.Close()
	ss.wg.Wait()
}

// SyncSelection sends sel to the PoP, replacing what it held for this
// connection, and watches for the PoP's notice that a selected publisher went
// offline or one of watch came online. ctx bounds only the wait for the PoP's
// acceptance.
func (c *Client) SyncSelection(ctx context.Context, sel Selection, watch []string) (*SelectionSync, error) {
	tc := c.cur.Load()
	if tc == nil || !tc.cc.CanTakeNewRequest() {
		return nil, ErrNotConnected
	}
	ss, err := tc.cc.syncSelection(ctx, selectionWire{Apps: sel, Watch: watch})
	if err != nil {
		return nil, c.requestError(tc, "sync selection", err)
	}
	return ss, nil
}

func (cc *ClientConn) syncSelection(ctx context.Context, sel selectionWire) (*SelectionSync, error) {
	body, err := json.Marshal(sel)
	if err != nil {
		return nil, err
	}
	s, err := cc.openStream(ctx, []hpack.HeaderField{
		{Name: ":method", Value: http.MethodPost},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "pop.invalid"},
		{Name: ":path", Value: PathSelection},
		{Name: "content-type", Value: "application/json"},
	})
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	_, werr := s.Write(body)
	if werr == nil {
		werr = s.CloseWrite()
	}
	status, h, err := s.awaitResponse(ctx)
	stopped := stop()
	switch {
	case !stopped || ctx.Err() != nil:
		err = ctx.Err()
	case err == nil && status != http.StatusOK:
		err = &RefusedError{Status: status, Reason: h.Get(HeaderReason)}
	case err != nil && werr != nil:
		err = werr
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	ss := &SelectionSync{s: s, stale: make(chan struct{})}
	ss.wg.Add(1)
	go ss.watch()
	return ss, nil
}

// watch waits for the PoP's notice or the stream's end.
func (ss *SelectionSync) watch() {
	defer ss.wg.Done()
	line, err := bufio.NewReaderSize(io.LimitReader(ss.s, 512), 512).ReadString('\n')
	switch {
	case strings.HasPrefix(line, "stale "):
		ss.reason = "publisher " + strings.TrimSpace(strings.TrimPrefix(line, "stale ")) + " went offline"
	case strings.HasPrefix(line, "online "):
		ss.reason = "publisher " + strings.TrimSpace(strings.TrimPrefix(line, "online ")) + " came online"
	case err != nil:
		ss.reason = "selection stream ended: " + err.Error()
	default:
		ss.reason = "PoP said " + strings.TrimSpace(line)
	}
	close(ss.stale)
}

package l7

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2/hpack"
)

// The speed test (`ztdiag -g upload|download -s SIZE`): POST PathSpeed names
// the app (Zt-App), the publisher (Zt-Publisher) and the test (Zt-Speed:
// "upload N" or "download N", N bytes, at most MaxSpeedBytes). The PoP
// authorizes it as a probe (the device may use the app, the publisher serves
// it), forwards it on that publisher's connection and relays both ways. The
// publisher answers 200 at once, then for a download sends N bytes and ends;
// for an upload reads the agent's bytes to their end and answers with how
// many it read, in decimal on one line. Neither end touches a target: the
// bytes cross the tunnel to the publisher and no further.
const (
	PathSpeed   = "/speed"
	HeaderSpeed = "Zt-Speed"
	// MaxSpeedBytes bounds one test's size.
	MaxSpeedBytes = 1 << 30
	// Speed test directions.
	SpeedUpload   = "upload"
	SpeedDownload = "download"
)

// SpeedResult is a speed test's outcome: the bytes moved and the time they
// took, from the publisher's answer to the last byte (download) or to its
// count (upload).
type SpeedResult struct {
	Bytes    int64
	Duration time.Duration
}

// Mbps is the result in megabits per second.
func (r SpeedResult) Mbps() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) * 8 / r.Duration.Seconds() / 1e6
}

// IsSpeed reports whether r is a speed test, which the PoP and the
// publisher serve.
func IsSpeed(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL != nil && r.URL.Path == PathSpeed
}

// ParseSpeed reads what a speed test names.
func ParseSpeed(r *http.Request) (app, publisher, dir string, n int64, err error) {
	app, publisher = r.Header.Get(HeaderApp), r.Header.Get(HeaderPublisher)
	if app == "" || publisher == "" {
		return "", "", "", 0, errors.New("a speed test needs " + HeaderApp + " and " + HeaderPublisher + " headers")
	}
	dir, size, _ := strings.Cut(r.Header.Get(HeaderSpeed), " ")
	n, err = strconv.ParseInt(size, 10, 64)
	if (dir != SpeedUpload && dir != SpeedDownload) || err != nil || n < 1 || n > MaxSpeedBytes {
		return "", "", "", 0, fmt.Errorf("%s must be \"upload N\" or \"download N\" with N from 1 to %d", HeaderSpeed, MaxSpeedBytes)
	}
	return app, publisher, dir, n, nil
}

// OpenSpeed opens a speed test's stream on cc and waits for its 200; a
// refusal is a *RefusedError. The PoP forwards a test to a publisher with it.
func (cc *ClientConn) OpenSpeed(ctx context.Context, authority, app, publisher, dir string, n int64) (*Stream, error) {
	s, err := cc.openStream(ctx, []hpack.HeaderField{
		{Name: ":method", Value: http.MethodPost},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: authority},
		{Name: ":path", Value: PathSpeed},
		{Name: "zt-app", Value: app},
		{Name: "zt-publisher", Value: publisher},
		{Name: "zt-speed", Value: dir + " " + strconv.FormatInt(n, 10)},
	})
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	status, h, err := s.awaitResponse(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		err = ctx.Err()
	case err == nil && status != http.StatusOK:
		err = &RefusedError{Status: status, Reason: h.Get(HeaderReason)}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Speed runs a speed test of n bytes (dir: SpeedUpload or SpeedDownload)
// through the PoP to publisher, a publisher of app. Errors are as for Probe.
func (c *Client) Speed(ctx context.Context, app, publisher, dir string, n int64) (SpeedResult, error) {
	tc := c.cur.Load()
	if tc == nil || !tc.cc.CanTakeNewRequest() {
		return SpeedResult{}, ErrNotConnected
	}
	s, err := tc.cc.OpenSpeed(ctx, "pop.invalid", app, publisher, dir, n)
	if err != nil {
		return SpeedResult{}, c.requestError(tc, "speed test "+publisher, err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	start := time.Now()
	var got int64
	if dir == SpeedDownload {
		s.CloseWrite()
		got, err = io.Copy(io.Discard, io.LimitReader(s, n+1))
	} else {
		got, err = upload(s, n)
	}
	res := SpeedResult{Bytes: got, Duration: time.Since(start)}
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case err != nil:
		return res, fmt.Errorf("l7: speed test: %w", err)
	case got != n:
		return res, fmt.Errorf("l7: speed test: %d bytes moved, not %d", got, n)
	}
	return res, nil
}

// upload writes n bytes to s, ends them, and returns the count the
// publisher answers with.
func upload(s *Stream, n int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for left := n; left > 0; {
		k, err := s.Write(buf[:min(left, int64(len(buf)))])
		if err != nil {
			return n - left, err
		}
		left -= int64(k)
	}
	if err := s.CloseWrite(); err != nil {
		return n, err
	}
	line, err := bufio.NewReaderSize(io.LimitReader(s, 32), 32).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("the publisher's count: %w", err)
	}
	return strconv.ParseInt(strings.TrimSpace(line), 10, 64)
}

// ServeSpeed is the publisher's side of a speed test.
func ServeSpeed(w http.ResponseWriter, r *http.Request) {
	_, _, dir, n, err := ParseSpeed(r)
	if err != nil {
		Refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	w.WriteHeader(http.StatusOK)
	flush := Flusher(w)
	if flush() != nil {
		return
	}
	if dir == SpeedUpload {
		got, err := io.Copy(io.Discard, io.LimitReader(r.Body, n+1))
		if err == nil {
			fmt.Fprintf(w, "%d\n", got)
			flush()
		}
		return
	}
	buf := make([]byte, 64<<10)
	for left := n; left > 0; {
		k, err := w.Write(buf[:min(left, int64(len(buf)))])
		if err == nil {
			err = flush()
		}
		if err != nil {
			return
		}
		left -= int64(k)
	}
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll/tenantapi"
	"github.com/ztagent/ztagent/tunnel/l7"
)

// speedTestTimeout bounds one speed test (`ztdiag -g`).
const speedTestTimeout = 10 * time.Minute

var errNoPublisher = errors.New("no publisher to test: none of the apps has a publisher online in the last probe round")

// speedTarget is an app and publisher a speed test goes to: the publisher
// the last probe round selected for app, or for the first app (by ID) that
// has one, skipping the first skip apps (ones the policy refused).
func (p *parts) speedTarget(app string, skip int) (string, string, error) {
	_, pubs := p.selectionStatus()
	apps := []string{app}
	if app == "" {
		apps = slices.Sorted(func(yield func(string) bool) {
			for id := range pubs {
				if !yield(id) {
					return
				}
			}
		})
	}
	for _, id := range apps {
		for _, ps := range pubs[id] {
			if ps.Selected && ps.Error == "" {
				if skip == 0 {
					return id, ps.Name, nil
				}
				skip--
				break
			}
		}
	}
	if app != "" {
		return "", "", fmt.Errorf("app %q has no publisher online in the last probe round", app)
	}
	return "", "", errNoPublisher
}

// serveSpeed is `ztdiag -g upload|download -s SIZE` (root).
func (a *Agent) serveSpeed(w http.ResponseWriter, req *http.Request) {
	var sr ctlapi.SpeedRequest
	if err := tenantapi.DecodeStrict(http.MaxBytesReader(w, req.Body, 4<<10), &sr); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("speed test request: %w", err))
		return
	}
	if (sr.Direction != l7.SpeedUpload && sr.Direction != l7.SpeedDownload) || sr.Bytes < 1 || sr.Bytes > l7.MaxSpeedBytes {
		writeError(w, http.StatusBadRequest, fmt.Errorf("speed test: want upload or download of 1 to %d bytes", int64(l7.MaxSpeedBytes)))
		return
	}
	p, _ := a.current()
	if p == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("the agent is not running"))
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), speedTestTimeout)
	defer cancel()
	var app, pub string
	var res l7.SpeedResult
	var err error
	// A publisher is measured for every app it serves, but the policy may
	// deny this user some of them: with no app named, the next one is tried.
	for skip := 0; ; skip++ {
		if app, pub, err = p.speedTarget(sr.App, skip); err != nil {
			writeError(w, http.StatusConflict, err)
			return
		}
		res, err = p.l7.Speed(ctx, app, pub, sr.Direction, sr.Bytes)
		var re *l7.RefusedError
		if sr.App != "" || !errors.As(err, &re) || re.Status != http.StatusForbidden {
			break
		}
	}
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("speed test to publisher %s (app %s): %w", pub, app, err))
		return
	}
	out := ctlapi.SpeedResult{Direction: sr.Direction, App: app, Publisher: pub, PoP: p.l7.Status().Addr,
		Bytes: res.Bytes, Duration: res.Duration, Mbps: res.Mbps()}
	a.log.Info("speed test", zap.String("app", app), zap.String("publisher", pub), zap.String("direction", sr.Direction),
		zap.Int64("bytes", res.Bytes), zap.Duration("took", res.Duration))
	writeJSON(w, http.StatusOK, out)
}

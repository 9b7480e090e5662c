package ctlapi

import (
	"context"
	"net/http"
	"time"
)

// PathSpeed is `ztdiag -g upload|download -s SIZE`: a speed test through the
// L7 tunnel to a publisher, which sinks or sources the bytes.
const PathSpeed = "/v1/speed" // POST SpeedRequest: SpeedResult (root)

// SpeedRequest asks for a speed test of Bytes bytes; Direction is "upload"
// or "download". App picks the app whose selected publisher is tested;
// none: the first app (by ID) with a publisher online.
type SpeedRequest struct {
	Direction string `json:"direction"`
	Bytes     int64  `json:"bytes"`
	App       string `json:"app,omitempty"`
}

// SpeedResult is a speed test's outcome.
type SpeedResult struct {
	Direction string        `json:"direction"`
	App       string        `json:"app"`
	Publisher string        `json:"publisher"`
	PoP       string        `json:"pop"`
	Bytes     int64         `json:"bytes"`
	Duration  time.Duration `json:"duration_ns"`
	Mbps      float64       `json:"mbps"`
}

// Speed runs a speed test (root). It waits as long as the test takes, up
// to 10 minutes unless Timeout is longer.
func (c *Client) Speed(ctx context.Context, req SpeedRequest) (SpeedResult, error) {
	var r SpeedResult
	slow := *c
	slow.Timeout = max(c.Timeout, 10*time.Minute)
	return r, slow.Do(ctx, http.MethodPost, PathSpeed, req, &r)
}

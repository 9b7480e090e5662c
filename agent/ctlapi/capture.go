package ctlapi

import (
	"context"
	"net/http"
	"time"
)

// PathCapture is `ztdiag -c start|stop`: a capture of the packets the agent
// reads from and writes to its TUN device, into a pcap file.
const PathCapture = "/v1/capture" // POST CaptureRequest: CaptureStatus (root); also in Status.Capture

// PathUplinkCapture is `ztdiag -p start|stop`: a capture of the agent's own
// connections on the uplink (the PoPs, the L3E gateway, the tenant API, the
// DNS upstreams, the probes), into a pcap file. The same request and status
// as PathCapture.
const PathUplinkCapture = "/v1/capture/uplink" // POST CaptureRequest: CaptureStatus (root); also in Status.UplinkCapture

// Capture actions.
const (
	CaptureStart = "start"
	CaptureStop  = "stop"
)

// CaptureRequest starts or stops the capture. File is an absolute path
// (none: one the agent picks in its state directory); Snaplen cuts each
// packet to that many bytes (0: 65535).
type CaptureRequest struct {
	Action  string `json:"action"`
	File    string `json:"file,omitempty"`
	Snaplen int    `json:"snaplen,omitempty"`
}

// CaptureStatus is the capture that runs, or the last one since the agent
// started.
type CaptureStatus struct {
	Running bool   `json:"running"`
	File    string `json:"file"`
	// Interface is where an uplink capture reads ("any": every interface).
	Interface string `json:"interface,omitempty"`
	Snaplen   int    `json:"snaplen"`
	// MaxBytes is the file's size cap: the capture ends when the next
	// packet would pass it.
	MaxBytes int64     `json:"max_bytes"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	// Ending says why it ended: stopped, the size cap, a write error.
	Ending  string `json:"ending,omitempty"`
	Packets int64  `json:"packets"`
	Bytes   int64  `json:"bytes"` // the file's size
	// Dropped counts packets not written because the writer fell behind.
	Dropped int64 `json:"dropped"`
}

// Capture starts or stops the capture (root).
func (c *Client) Capture(ctx context.Context, req CaptureRequest) (CaptureStatus, error) {
	var cs CaptureStatus
	return cs, c.Do(ctx, http.MethodPost, PathCapture, req, &cs)
}

// UplinkCapture starts or stops the uplink capture (root).
func (c *Client) UplinkCapture(ctx context.Context, req CaptureRequest) (CaptureStatus, error) {
	var cs CaptureStatus
	return cs, c.Do(ctx, http.MethodPost, PathUplinkCapture, req, &cs)
}

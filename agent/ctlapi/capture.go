package ctlapi

import (
	"context"
	"net/http"
	"time"
)

// PathCapture is `ztdiag -c start|stop`: a capture of the packets the agent
// reads from and writes to its TUN device, into a pcap file.
const PathCapture = "/v1/capture" // POST CaptureRequest: CaptureStatus (root); also in Status.Capture

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
	Snaplen int    `json:"snaplen"`
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

package ctlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/ztagent/ztagent/platform"
)

// Client calls the daemon's control API over its socket (a unix socket, a
// named pipe on Windows). The zero Timeout means 30 seconds per call.
type Client struct {
	Socket  string
	Timeout time.Duration
}

// maxResponse bounds an answer: a status with 10,000 apps and stubs is a few MiB.
const maxResponse = 16 << 20

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.Do(ctx, http.MethodGet, PathStatus, nil, &st)
}

// Match asks how the live config decides req.
func (c *Client) Match(ctx context.Context, req MatchRequest) (MatchResponse, error) {
	var resp MatchResponse
	return resp, c.Do(ctx, http.MethodPost, PathMatch, req, &resp)
}

// Sync makes the agent fetch its config from the tenant now.
func (c *Client) Sync(ctx context.Context) (ConfigStatus, error) {
	var cs ConfigStatus
	return cs, c.Do(ctx, http.MethodPost, PathSync, nil, &cs)
}

// Log returns the agent's log level and file.
func (c *Client) Log(ctx context.Context) (LogStatus, error) {
	var ls LogStatus
	return ls, c.Do(ctx, http.MethodGet, PathLog, nil, &ls)
}

// SetLog changes the agent's log level or file size at once.
func (c *Client) SetLog(ctx context.Context, req LogRequest) (LogStatus, error) {
	var ls LogStatus
	return ls, c.Do(ctx, http.MethodPost, PathLog, req, &ls)
}

// Bundle returns the diagnostics bundle, gathered by the agent.
func (c *Client) Bundle(ctx context.Context, req BundleRequest) (Bundle, error) {
	var b Bundle
	return b, c.Do(ctx, http.MethodPost, PathBundle, req, &b)
}

// SetSteering turns steering on or off (`ztdiag -t`).
func (c *Client) SetSteering(ctx context.Context, req SteeringRequest) (SteeringStatus, error) {
	var st SteeringStatus
	return st, c.Do(ctx, http.MethodPost, PathSteering, req, &st)
}

// Reenroll makes the agent enroll again with the install parameters updated
// by args. The answer comes once the new enrollment is saved; the agent then
// restarts with it. An enrollment may wait for a sign-in in the browser, so
// the call waits up to 5 minutes unless Timeout is longer.
func (c *Client) Reenroll(ctx context.Context, args []string) (EnrollmentStatus, error) {
	var es EnrollmentStatus
	slow := *c
	slow.Timeout = max(c.Timeout, reenrollTimeout)
	// Never "args": null — the agent refuses an incomplete request.
	return es, slow.Do(ctx, http.MethodPost, PathEnroll, ReenrollRequest{Args: append([]string{}, args...)}, &es)
}

const reenrollTimeout = 5 * time.Minute

// APIError is the daemon's answer other than 200 OK: its HTTP status and
// message. Status is http.StatusForbidden for a call that needs
// root/administrator (Forbidden).
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Forbidden reports whether err is the daemon refusing a call the caller
// may not make.
func Forbidden(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusForbidden
}

// Do sends in (nil for no body) as JSON and decodes the answer into out. An
// answer other than 200 OK is an error carrying the daemon's message.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://ztagent"+path, body)
	if err != nil {
		return err
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return platform.DialControl(ctx, c.Socket)
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err // the dial error already says what is wrong
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	switch {
	case err != nil:
		return err
	case len(b) > maxResponse:
		// Said as such, not as the JSON error a cut answer would give.
		return fmt.Errorf("the agent's answer to %s is larger than %d bytes", path, maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		e := &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("daemon answered %s", resp.Status)}
		var er ErrorResponse
		if json.Unmarshal(b, &er) == nil && er.Error != "" {
			e.Message = er.Error
		}
		return e
	}
	return json.Unmarshal(b, out)
}

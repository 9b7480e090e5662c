package enroll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// ConfigClient fetches the device's config from the tenant API over mutual TLS
// with the device certificate. It is safe for concurrent use; Close releases its
// idle connections.
type ConfigClient struct {
	id     *Identity
	url    string
	tr     *http.Transport
	client *http.Client
	log    *zap.Logger
}

// NewConfigClient returns a client for id's tenant.
func NewConfigClient(id *Identity, log *zap.Logger) (*ConfigClient, error) {
	if id == nil || len(id.Cert.Certificate) == 0 || id.Cert.PrivateKey == nil {
		return nil, errors.New("config client: identity has no device certificate; enroll first")
	}
	if _, err := tenantapi.BaseURL(id.TenantURL); err != nil {
		return nil, fmt.Errorf("config client: identity's tenant URL %v; enroll again", err)
	}
	tr := newTransport(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      id.APIRoots,
		Certificates: []tls.Certificate{id.Cert},
	})
	return &ConfigClient{id: id, url: id.TenantURL + "/v1/config", tr: tr,
		client: &http.Client{Transport: tr}, log: log.Named("config")}, nil
}

// Close releases idle connections. It is idempotent.
func (c *ConfigClient) Close() { c.tr.CloseIdleConnections() }

// Fetch returns the current config and its ETag. With etag set to the last one
// received and the config unchanged, it returns ErrNotModified and the same ETag.
// Other failures are *Error with one sentence each.
func (c *ConfigClient) Fetch(ctx context.Context, etag string) (*tenantapi.AgentConfig, string, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, "", errorf(ReasonBadResponse, err, "bad tenant API URL %s: %v — enroll the device again", c.url, err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "remote error: tls:") {
			// The tenant refused the handshake: our certificate is expired,
			// revoked or from another CA.
			return nil, "", errorf(tenantapi.ReasonClientCertRequired, err,
				"tenant API at %s refused this device's certificate (%v) — enroll the device again", c.id.TenantURL, urlCause(err))
		}
		return nil, "", explainTransport(c.id.TenantURL, err, "")
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, etag, ErrNotModified
	case http.StatusOK:
	default:
		e := explainStatus(c.id.TenantURL, resp, Params{UPN: c.id.User})
		if e.Reason == tenantapi.ReasonUnknownUser {
			e.msg = "tenant " + c.id.TenantURL + " no longer has user " + c.id.User +
				": ask the administrator to restore the user, or enroll this device again as a current user"
		}
		return nil, "", e
	}
	cfg, err := c.decode(resp.Body)
	if err != nil {
		return nil, "", err
	}
	newTag := resp.Header.Get("ETag")
	c.log.Debug("config fetched", zap.String("etag", newTag), zap.Int("apps", len(cfg.Steering.Apps)))
	return cfg, newTag, nil
}

// decode reads a config leniently (a newer tenant may add fields) and checks
// that it is for this device's tenant and user.
func (c *ConfigClient) decode(r io.Reader) (*tenantapi.AgentConfig, error) {
	var cfg tenantapi.AgentConfig
	if err := tenantapi.DecodeAnswer(r, tenantapi.MaxConfigBody, &cfg); err != nil {
		return nil, explainAnswer(c.id.TenantURL, "config", err)
	}
	if cfg.Tenant != c.id.Tenant || !strings.EqualFold(cfg.User, c.id.User) {
		return nil, errorf(ReasonBadResponse, nil,
			"tenant API at %s sent a config for %s in tenant %s, not for this device's user — report this to the tenant administrator",
			c.id.TenantURL, cfg.User, cfg.Tenant)
	}
	// Refuse here what the agent could not apply, so that a bad config from the
	// tenant never replaces the last good one.
	if err := cfg.Steering.Validate(); err != nil {
		return nil, errorf(ReasonBadResponse, err,
			"tenant API at %s sent a config this agent cannot apply (%v) — report this to the tenant administrator", c.id.TenantURL, err)
	}
	return &cfg, nil
}

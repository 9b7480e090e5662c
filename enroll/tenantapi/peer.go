package tenantapi

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Identities are carried in certificates as one URI SAN:
//
//	ztagent://<tenant>/device/<device id>?user=<upn>
//	ztagent://<tenant>/publisher/<name>
//
// A URI SAN, unlike the subject, is typed, unambiguous to parse and ignored by
// TLS host-name checks, so it cannot be confused with a server name.
const uriScheme = "ztagent"

// Peer kinds.
const (
	KindDevice    = "device"
	KindPublisher = "publisher"
)

// DeviceIdentity is what a device certificate asserts.
type DeviceIdentity struct {
	Tenant   string
	DeviceID string
	User     string
}

// URI returns the identity's URI SAN.
func (d DeviceIdentity) URI() string {
	u := url.URL{Scheme: uriScheme, Host: d.Tenant, Path: "/" + KindDevice + "/" + d.DeviceID,
		RawQuery: url.Values{"user": {d.User}}.Encode()}
	return u.String()
}

// PublisherIdentity is what a publisher certificate asserts.
type PublisherIdentity struct {
	Tenant string
	Name   string
}

// URI returns the identity's URI SAN.
func (p PublisherIdentity) URI() string {
	u := url.URL{Scheme: uriScheme, Host: p.Tenant, Path: "/" + KindPublisher + "/" + p.Name}
	return u.String()
}

// Peer is the identity a verified client certificate carries.
type Peer struct {
	Tenant    string
	Kind      string // KindDevice or KindPublisher
	Device    string // device id, for devices
	User      string // UPN, for devices
	Publisher string // name, for publishers
}

// PeerIdentity reads the identity from a certificate the tenant CA issued. It
// does not verify the certificate: callers pass a leaf that TLS has verified
// against the CA pool.
func PeerIdentity(cert *x509.Certificate) (Peer, error) {
	var found *url.URL
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		if found != nil {
			return Peer{}, errors.New("certificate carries more than one ztagent identity")
		}
		found = u
	}
	if found == nil {
		return Peer{}, errors.New("certificate carries no ztagent identity")
	}
	return peerFromURI(found)
}

func peerFromURI(u *url.URL) (Peer, error) {
	bad := func(why string) (Peer, error) {
		return Peer{}, fmt.Errorf("malformed identity %q: %s", u.String(), why)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return bad("want ztagent://tenant/kind/id")
	}
	kind, id, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return bad("want ztagent://tenant/kind/id")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("bad query")
	}
	p := Peer{Tenant: u.Host, Kind: kind}
	switch kind {
	case KindDevice:
		p.Device = id
		if p.User = q.Get("user"); p.User == "" || len(q) != 1 || len(q["user"]) != 1 {
			return bad("a device identity names exactly one user")
		}
	case KindPublisher:
		p.Publisher = id
		if len(q) != 0 {
			return bad("a publisher identity has no query")
		}
	default:
		return bad("unknown kind " + kind)
	}
	return p, nil
}

// ParseIdentityURI parses s as an identity URI SAN and checks that it names a
// device or a publisher, as a certificate the tenant CA signs must.
func ParseIdentityURI(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if _, err := peerFromURI(u); err != nil {
		return nil, err
	}
	return u, nil
}

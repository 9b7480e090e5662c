package tenantapi

import (
	"encoding/json"
	"net/url"
	"testing"
)

// FuzzPeerURI: identities parse back to what was encoded, and malformed URIs are
// errors, not panics.
func FuzzPeerURI(f *testing.F) {
	f.Add("demo", "dev1", "alice@demo.test", "pub1")
	f.Add("t", "a/b", "x&user=y", "p?q")
	f.Fuzz(func(t *testing.T, tenant, dev, user, pub string) {
		d := DeviceIdentity{Tenant: tenant, DeviceID: dev, User: user}
		if u, err := url.Parse(d.URI()); err == nil {
			if p, err := peerFromURI(u); err == nil && (p.Tenant != tenant || p.Device != dev || p.User != user) {
				t.Fatalf("device %+v parsed back as %+v", d, p)
			}
		}
		pi := PublisherIdentity{Tenant: tenant, Name: pub}
		if u, err := url.Parse(pi.URI()); err == nil {
			if p, err := peerFromURI(u); err == nil && (p.Tenant != tenant || p.Publisher != pub) {
				t.Fatalf("publisher %+v parsed back as %+v", pi, p)
			}
		}
	})
}

// FuzzOpenConfig: the enrollment answer's sealed-config envelope, decoded as
// the agent decodes it, never panics; only a box sealed with the right token
// for the right device opens.
func FuzzOpenConfig(f *testing.F) {
	good, err := SealConfig(encSet1, "demo", "dev1", []byte(`{"tenant":"demo","user":"a@b"}`))
	if err != nil {
		f.Fatal(err)
	}
	goodJSON, _ := json.Marshal(good)
	f.Add(goodJSON, encSet1)
	f.Add(goodJSON, encBad)
	f.Add([]byte(`{"alg":"A256GCM-HKDF-SHA256","nonce":"AAAAAAAAAAAAAAAA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}`), "")
	f.Add([]byte(`{"alg":"none"}`), "x")
	f.Fuzz(func(t *testing.T, data []byte, token string) {
		var resp EnrollResponse
		if json.Unmarshal(append(append([]byte(`{"sealed_config":`), data...), '}'), &resp) != nil || resp.SealedConfig == nil {
			return
		}
		cfg, err := OpenConfig(resp.SealedConfig, token, "demo", "dev1")
		if err == nil && (token != encSet1 || cfg == nil) {
			t.Fatalf("opened with token %q", token)
		}
		if _, err := OpenConfig(resp.SealedConfig, token, "demo", "dev2"); err == nil {
			t.Fatal("a box for dev1 opened for dev2")
		}
	})
}

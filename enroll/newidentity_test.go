package enroll

import (
	"crypto/tls"
	"testing"
)

func TestNewIdentity(t *testing.T) {
	base := testIdentity(t)
	id, err := NewIdentity("t:8444", base.Cert, base.caPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id.Tenant != "demo" || id.User != "alice@demo.test" || id.DeviceID != base.DeviceID || id.TenantURL != "https://t:8444" {
		t.Fatalf("identity from the certificate: %+v", id)
	}
	dir := t.TempDir()
	if err := id.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadIdentity(dir)
	if err != nil || loaded.DeviceID != id.DeviceID {
		t.Fatalf("saved and loaded: %v, %v", loaded, err)
	}
	for name, build := range map[string]func() (*Identity, error){
		"no certificate": func() (*Identity, error) { return NewIdentity("t", tls.Certificate{}, base.caPEM, nil) },
		"no CA":          func() (*Identity, error) { return NewIdentity("t", base.Cert, nil, nil) },
		"bad URL":        func() (*Identity, error) { return NewIdentity("http://t", base.Cert, base.caPEM, nil) },
	} {
		if _, err := build(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

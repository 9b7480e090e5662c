package tenant

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

func TestRenew(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	id := l.enroll("alice@demo.test")
	leaf := id.Cert.Leaf
	// Two thirds of a 90-day certificate (plus its 5 minutes of clock skew).
	if d := id.RenewAt().Sub(leaf.NotBefore); d < 60*24*time.Hour || d > 60*24*time.Hour+time.Hour {
		t.Errorf("RenewAt is %v after NotBefore, want 60 days", d)
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{leaf.NotBefore, false},
		{leaf.NotBefore.Add(59 * 24 * time.Hour), false},
		{leaf.NotBefore.Add(61 * 24 * time.Hour), true},
		{leaf.NotAfter, true},
	} {
		if got := id.NeedsRenewal(tc.at); got != tc.want {
			t.Errorf("NeedsRenewal(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}

	next, err := enroll.Renew(context.Background(), id, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if next.DeviceID != id.DeviceID || next.User != id.User || next.Cert.Leaf.Equal(leaf) ||
		next.Cert.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(leaf.PublicKey) {
		t.Fatalf("renewed identity: same key or other identity: %+v", next)
	}
	// The renewed identity persists and fetches config; the old one is untouched.
	dir := t.TempDir()
	if err := next.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := enroll.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	cc := newCC(t, loaded)
	defer cc.Close()
	if _, _, err := cc.Fetch(context.Background(), ""); err != nil {
		t.Fatalf("config with the renewed certificate: %v", err)
	}
	if !id.Cert.Leaf.Equal(leaf) {
		t.Error("Renew changed its argument")
	}

	// A user removed from the tenant cannot renew.
	tn := loadDemo(t)
	delete(tn.users, "alice@demo.test")
	l.tenant.Store(tn)
	if _, err := enroll.Renew(context.Background(), next, zap.NewNop()); !isReason(err, tenantapi.ReasonUnknownUser) {
		t.Errorf("removed user: %v", err)
	}
}

func TestRenewNeedsDeviceCertificate(t *testing.T) {
	l := newLab(t, loadDemo(t), nil)
	resp, err := l.srv.Client().Post(l.srv.URL+"/v1/renew", "application/json", strings.NewReader(`{"csr":""}`))
	if err != nil {
		t.Fatal(err)
	}
	e := readError(resp)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || e == nil || e.Reason != tenantapi.ReasonClientCertRequired {
		t.Fatalf("renew without a client certificate: HTTP %d %+v", resp.StatusCode, e)
	}
	if _, err := enroll.Renew(context.Background(), &enroll.Identity{}, zap.NewNop()); !errors.As(err, new(*enroll.Error)) {
		t.Errorf("renew without identity: %v", err)
	}
}

package tenant

import (
	"errors"
	"testing"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

func TestAuthorizeEcho(t *testing.T) {
	tn, err := Load(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, upn, app, host string
		reason               string // "" means allowed
	}{
		{"app name", "alice@demo.test", "web", "web.corp.test", ""},
		{"wildcard", "bob@demo.test", "wild", "a.apps.corp.test", ""},
		{"address app", "bob@demo.test", "ipapp", "10.20.0.10", ""},
		{"host outside the app", "bob@demo.test", "web", "other.corp.test", tenantapi.ReasonHostNotInApp},
		{"address outside the app", "bob@demo.test", "ipapp", "10.20.0.11", tenantapi.ReasonHostNotInApp},
		{"denied by policy", "alice@demo.test", "secret", "secret.corp.test", tenantapi.ReasonDeniedByPolicy},
		{"unknown app", "bob@demo.test", "nope", "web.corp.test", tenantapi.ReasonUnknownApp},
		{"unknown user", "carol@demo.test", "web", "web.corp.test", tenantapi.ReasonUnknownUser},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pubs, err := tn.AuthorizeEcho(tc.upn, tc.app, tc.host)
			if tc.reason == "" {
				if err != nil || len(pubs) != 1 || pubs[0] != "pub1" {
					t.Fatalf("got %v, %v; want [pub1]", pubs, err)
				}
				return
			}
			var d *DenyError
			if !errors.As(err, &d) || d.Reason != tc.reason || !errors.Is(err, ErrDenied) {
				t.Fatalf("got %v, want reason %s", err, tc.reason)
			}
		})
	}
}

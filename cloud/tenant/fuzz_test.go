package tenant

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// FuzzParseTenant: any input is either a valid tenant or a *FileError whose
// every problem is readable; never a panic. A valid tenant answers AgentConfig
// and Authorize for every user and app without error other than a denial.
func FuzzParseTenant(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/tenants/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"tenant": "j", "apps": [{"id": "x", "hosts": ["*.a"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tn, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tenant file fuzz.yaml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, u := range tn.Users {
			if _, err := tn.AgentConfig(u.UPN); err != nil {
				t.Fatalf("AgentConfig(%s): %v", u.UPN, err)
			}
			for _, a := range tn.Apps {
				for _, h := range a.Hosts {
					tn.Authorize(u.UPN, a.ID, strings.TrimPrefix(h, "*."), 80, "tcp")
				}
			}
		}
	})
}

// FuzzDecodeEnvelope: the strict request decoder and the CSR and device-name
// checks never panic, and accept only what re-encodes to an equal request.
func FuzzDecodeEnvelope(f *testing.F) {
	_, csr, _ := tenantapi.NewKey("seed")
	f.Add([]byte(`{"org_key":"k","upn":"a@b","device_name":"pc","csr":` + quoteJSON(csr) + `}`))
	f.Add([]byte(`{"org_key":"k"} {}`))
	f.Add([]byte(`{"org_key":"k","extra":1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"name":"pub1","token":"t","csr":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req tenantapi.UPNEnrollRequest
		if err := tenantapi.DecodeStrict(bytes.NewReader(data), &req); err == nil {
			if der, err := decodeCSRPEM(req.CSR); err == nil {
				ParseCSR(der)
			}
			checkDeviceName(req.DeviceName)
		}
		var pub tenantapi.PublisherEnrollRequest
		tenantapi.DecodeStrict(bytes.NewReader(data), &pub)
		var e tenantapi.Error
		tenantapi.DecodeStrict(bytes.NewReader(data), &e)
		// The envelopes added with invitations, IdP and renewal.
		var inv tenantapi.InviteEnrollRequest
		if tenantapi.DecodeStrict(bytes.NewReader(data), &inv) == nil {
			checkDeviceRequest(inv.DeviceName, inv.CSR)
		}
		var tok tenantapi.IdPTokenRequest
		if tenantapi.DecodeStrict(bytes.NewReader(data), &tok) == nil {
			checkDeviceRequest(tok.DeviceName, tok.CSR)
			checkLoopbackRedirect(tok.RedirectURI)
		}
		var ren tenantapi.RenewRequest
		tenantapi.DecodeStrict(bytes.NewReader(data), &ren)
		var adm tenantapi.InviteRequest
		tenantapi.DecodeStrict(bytes.NewReader(data), &adm)
	})
}

// FuzzParseIdPRequest: any authorize query is accepted only with a loopback
// redirect, the fixed client, S256 and well-formed challenge and state.
func FuzzParseIdPRequest(f *testing.F) {
	f.Add("client_id=ztagent&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&code_challenge=" + tenantapi.PKCES256("v") +
		"&code_challenge_method=S256&state=0123456789abcdef")
	f.Add("redirect_uri=http://[::1]:1/&client_id=ztagent")
	f.Add("redirect_uri=http://127.0.0.1:99999/")
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		r, bad := parseIdPRequest(q)
		if bad != "" {
			return
		}
		u, err := url.Parse(r.RedirectURI)
		if err != nil || u.Scheme != "http" || (u.Hostname() != "127.0.0.1" && u.Hostname() != "::1") ||
			r.ClientID != tenantapi.IdPClientID || len(r.Challenge) != 43 || q.Get("code_challenge_method") != "S256" {
			t.Fatalf("accepted %q", query)
		}
	})
}

func quoteJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\n':
			b.WriteString(`\n`)
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// FuzzParseInviteState: the tenant's invitation state file decodes strictly or
// is refused; it never panics, and what it accepts re-encodes and re-parses.
func FuzzParseInviteState(f *testing.F) {
	f.Add([]byte(`{"version":1,"used":[{"key_sha256":"` + keyHash("k") + `","upn":"a@b","device_id":"d","at":"2026-11-23T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"issued":[{"key_sha256":"` + keyHash("k") + `","upn":"a@b","expires":"2026-11-23T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"used":[{"key_sha256":"zz"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseInviteState(data)
		if err != nil {
			return
		}
		again, _ := json.Marshal(&st)
		if _, err := parseInviteState(again); err != nil {
			t.Fatalf("accepted state does not re-parse: %v", err)
		}
	})
}

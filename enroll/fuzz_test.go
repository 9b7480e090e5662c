package enroll

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseTenant: any input is either a valid tenant or a *TenantError whose
// every problem is readable; never a panic. A valid tenant answers AgentConfig
// and Authorize for every user and app without error other than a denial.
func FuzzParseTenant(f *testing.F) {
	files, _ := filepath.Glob("../testdata/tenants/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"tenant": "j", "apps": [{"id": "x", "hosts": ["*.a"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tn, err := ParseTenant("fuzz.yaml", data)
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
	_, csr, _ := newDeviceKey("seed")
	f.Add([]byte(`{"org_key":"k","upn":"a@b","device_name":"pc","csr":` + quoteJSON(csr) + `}`))
	f.Add([]byte(`{"org_key":"k"} {}`))
	f.Add([]byte(`{"org_key":"k","extra":1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"name":"pub1","token":"t","csr":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req upnEnrollRequest
		if err := decodeStrict(bytes.NewReader(data), &req); err == nil {
			if der, err := decodeCSRPEM(req.CSR); err == nil {
				ParseCSR(der)
			}
			checkDeviceName(req.DeviceName)
		}
		var pub publisherEnrollRequest
		decodeStrict(bytes.NewReader(data), &pub)
		var e apiError
		decodeStrict(bytes.NewReader(data), &e)
		parseIdentity(data)
		// The envelopes added with invitations, IdP and renewal.
		var inv inviteEnrollRequest
		if decodeStrict(bytes.NewReader(data), &inv) == nil {
			checkDeviceRequest(inv.DeviceName, inv.CSR)
		}
		var tok idpTokenRequest
		if decodeStrict(bytes.NewReader(data), &tok) == nil {
			checkDeviceRequest(tok.DeviceName, tok.CSR)
			checkLoopbackRedirect(tok.RedirectURI)
		}
		var ren renewRequest
		decodeStrict(bytes.NewReader(data), &ren)
		var adm inviteRequest
		decodeStrict(bytes.NewReader(data), &adm)
	})
}

// FuzzParseIdPRequest: any authorize query is accepted only with a loopback
// redirect, the fixed client, S256 and well-formed challenge and state.
func FuzzParseIdPRequest(f *testing.F) {
	f.Add("client_id=ztagent&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&code_challenge=" + pkceS256("v") +
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
			r.ClientID != idpClientID || len(r.Challenge) != 43 || q.Get("code_challenge_method") != "S256" {
			t.Fatalf("accepted %q", query)
		}
	})
}

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
		ParseParams([]string{tenant + "=" + dev, user})
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

// FuzzOpenConfig: the enrollment answer's sealed-config envelope, decoded as
// the agent decodes it, never panics; only a box sealed with the right token
// for the right device opens.
func FuzzOpenConfig(f *testing.F) {
	good, err := sealConfig(encSet1, "demo", "dev1", []byte(`{"tenant":"demo","user":"a@b"}`))
	if err != nil {
		f.Fatal(err)
	}
	goodJSON, _ := json.Marshal(good)
	f.Add(goodJSON, encSet1)
	f.Add(goodJSON, encBad)
	f.Add([]byte(`{"alg":"A256GCM-HKDF-SHA256","nonce":"AAAAAAAAAAAAAAAA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}`), "")
	f.Add([]byte(`{"alg":"none"}`), "x")
	f.Fuzz(func(t *testing.T, data []byte, token string) {
		var resp enrollResponse
		if json.Unmarshal(append(append([]byte(`{"sealed_config":`), data...), '}'), &resp) != nil || resp.SealedConfig == nil {
			return
		}
		cfg, err := openConfig(resp.SealedConfig, token, "demo", "dev1")
		if err == nil && (token != encSet1 || cfg == nil) {
			t.Fatalf("opened with token %q", token)
		}
		if _, err := openConfig(resp.SealedConfig, token, "demo", "dev2"); err == nil {
			t.Fatal("a box for dev1 opened for dev2")
		}
	})
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

// FuzzParseIdentity: whatever a damaged disk leaves in identity.json is either
// a consistent identity or a reason, never a panic.
func FuzzParseIdentity(f *testing.F) {
	f.Add([]byte(`{"version":1,"tenant":"demo","user":"a@b","device_id":"d","tenant_url":"https://x","key":"","certificate":"","ca":""}`))
	f.Add([]byte(`{"version":1`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		id, why := parseIdentity(data)
		if (id == nil) == (why == "") {
			t.Fatalf("identity %v with reason %q", id, why)
		}
		if id != nil && (id.Cert.Leaf == nil || id.Roots == nil) {
			t.Fatal("accepted an identity without certificate or roots")
		}
	})
}

// FuzzParamsFile: the persisted install parameters load only as valid
// parameters, which save and load back unchanged.
func FuzzParamsFile(f *testing.F) {
	f.Add([]byte(`{"host":"tenant.example","token":"k","installmode":"idp"}`))
	f.Add([]byte(`{"hots":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var vals map[string]string
		if decodeStrict(bytes.NewReader(data), &vals) != nil {
			return
		}
		p, err := paramsFromMap(vals)
		if err != nil {
			return
		}
		again, err := paramsFromMap(paramValues(p))
		if err != nil || again != p {
			t.Fatalf("params do not round-trip: %v %v", again, err)
		}
	})
}

package enroll

import (
	"bytes"
	"testing"

	"github.com/ztagent/ztagent/enroll/tenantapi"
)

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
		if tenantapi.DecodeStrict(bytes.NewReader(data), &vals) != nil {
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

// FuzzParseParams: any key=value arguments parse or are refused, never panic.
func FuzzParseParams(f *testing.F) {
	f.Add("host", "tenant.example", "upn=alice@demo.test")
	f.Add("demo", "dev1", "x&user=y")
	f.Fuzz(func(t *testing.T, key, value, arg string) {
		ParseParams([]string{key + "=" + value, arg})
	})
}

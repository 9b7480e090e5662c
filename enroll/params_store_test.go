package enroll

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Secrets as an administrator would pass them (the demo tenant's org key).
const (
	demoOrgKey = "demo-org-key-8c1f4e27b9d35a60"
	authSet1   = "auth-token-set-one-5d2c9a"
	authSet2   = "auth-token-set-two-77e1b0"
	encSet2    = "enc-token-set-two-6b20de"
)

func TestSaveLoadUpdateParams(t *testing.T) {
	dir := t.TempDir()
	if p, err := LoadParams(dir); err != nil || p != (Params{}) {
		t.Fatalf("nothing saved: %v %v", p, err)
	}
	p, err := ParseParams([]string{"host=tenant.example", "token=" + demoOrgKey, "enrollauthtoken=" + authSet1, "installmode=idp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := SaveParams(dir, p); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, paramsFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("parameters file mode %v, want 0600", st.Mode().Perm())
	}
	got, err := LoadParams(dir)
	if err != nil || got != p {
		t.Fatalf("round trip: %v %v, want %v", got, err, p)
	}
	// ztdiag -e: replace the tokens, keep the rest.
	up, err := got.Update([]string{"enrollauthtoken=" + authSet2, "EnrollEncryptionToken=" + encSet2})
	if err != nil || up.EnrollAuthToken != authSet2 || up.EnrollEncryptionToken != encSet2 || up.Host != p.Host || up.Token != p.Token {
		t.Fatalf("update: %v %v", up, err)
	}
	if cleared, err := up.Update([]string{"enrollencryptiontoken="}); err != nil || cleared.EnrollEncryptionToken != "" {
		t.Errorf("clear: %v %v", cleared, err)
	}
	for _, bad := range [][]string{{"hots=x"}, {"installmode=SAML"}, {"enrollauthtoken=a", "enrollauthtoken=b"}, {authSet1}} {
		if _, err := up.Update(bad); err == nil || strings.Contains(err.Error(), authSet1) {
			t.Errorf("Update(%q) = %v", bad, err)
		}
	}
	for name, data := range map[string]string{
		"unknown key":   `{"hots":"x"}`,
		"bad value":     `{"installmode":"SAML"}`,
		"not an object": `["host"]`,
		"truncated":     `{"host":"tenant.ex`,
	} {
		os.WriteFile(filepath.Join(dir, paramsFile), []byte(data), 0o600)
		if _, err := LoadParams(dir); err == nil || !strings.Contains(err.Error(), paramsFile) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

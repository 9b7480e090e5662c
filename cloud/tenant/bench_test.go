package tenant

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// BenchmarkAuthorize is the PoP's per-flow check.
func BenchmarkAuthorize(b *testing.B) {
	tn := loadDemo(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tn.Authorize("alice@demo.test", "wild", "x.apps.corp.test", 80, "tcp"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseTenant10kApps loads a tenant of 10,000 apps and 1,000 users
// (a reload of a large tenant).
func BenchmarkParseTenant10kApps(b *testing.B) {
	var y strings.Builder
	y.WriteString("tenant: big\norg_key: big-org-key-0123456789abcdef\npop: {address: 10.10.0.1:8443}\n")
	y.WriteString("publishers: [{name: pub1, token: pub1-token-0123456789abcdef}]\nusers:\n")
	for i := range 1000 {
		fmt.Fprintf(&y, "  - {upn: user%d@big.test, groups: [g%d]}\n", i, i%10)
	}
	y.WriteString("apps:\n")
	for i := range 10000 {
		fmt.Fprintf(&y, "  - {id: app%d, hosts: [app%d.corp.test, \"10.%d.%d.0/24\"], tcp: \"80,443\", publishers: [pub1]}\n",
			i, i, i/256, i%256)
	}
	y.WriteString("steering:\n  - {name: all, users: [\"*\"], apps: [\"*\"]}\n")
	y.WriteString("policy:\n  - {name: all, groups: [g1, g2], apps: [\"*\"]}\n")
	data := []byte(y.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdPPasswordCheck is the tenant's cost per sign-in at bcrypt's
// default cost (what bounds sign-ins per core).
func BenchmarkIdPPasswordCheck(b *testing.B) {
	hash := dummyHash()
	b.ReportAllocs()
	for b.Loop() {
		if bcrypt.CompareHashAndPassword(hash, []byte("ztagent unknown user")) != nil {
			b.Fatal("mismatch")
		}
	}
}

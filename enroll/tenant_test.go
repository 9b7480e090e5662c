package enroll

import (
	"testing"
)

const demoTenant = "../testdata/tenants/demo.yaml"

func loadDemo(t testing.TB) *Tenant {
	t.Helper()
	tn, err := LoadTenant(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func TestLoadDemoTenant(t *testing.T) {
	tn := loadDemo(t)
	if tn.Name != "demo" || tn.PoP.Address != "10.10.0.1:8443" || tn.PoP.ServerName != "pop.demo.test" {
		t.Errorf("header = %q %+v", tn.Name, tn.PoP)
	}
	if tn.User("ALICE@demo.test") == nil || tn.User("carol@demo.test") != nil {
		t.Error("user lookup is wrong")
	}
	if tn.Publisher("pub1") == nil {
		t.Error("publisher pub1 missing")
	}
}

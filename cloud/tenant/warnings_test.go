package tenant

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	demo, err := os.ReadFile(demoTenant)
	if err != nil {
		t.Fatal(err)
	}
	full := string(demo)
	cut := full[:strings.Index(full, "\npolicy:")+1]
	tests := []struct {
		name, file string
		want       string // substring of the one warning; "" for none
	}{
		{"demo", full, ""},
		{"cut off before policy", cut,
			"policy: no rule: every flow is denied, yet users alice@demo.test, bob@demo.test are steered to apps — was the file cut off before its policy: section?"},
		{"deny rules only", cut + "policy:\n  - {name: closed, users: [\"*\"], apps: [\"*\"], action: deny}\n",
			"no allow rule covers them: users alice@demo.test, bob@demo.test are steered to apps that the PoP will refuse every time"},
		{"one user left out", cut + "policy:\n  - {name: eng, groups: [engineering], apps: [\"*\"]}\n",
			"user bob@demo.test is steered to apps"},
		{"allowed an app outside the profile", cut + "policy:\n  - {name: x, users: [\"*\"], apps: [secret]}\n",
			"user bob@demo.test is steered to apps"},
		{"nobody steered", cut[:strings.Index(cut, "\nsteering:")+1], ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn, err := Parse("t.yaml", []byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			ws := tn.Warnings()
			switch {
			case tc.want == "" && len(ws) != 0:
				t.Fatalf("warnings %v", ws)
			case tc.want != "" && (len(ws) != 1 || !strings.Contains(ws[0].String(), tc.want)):
				t.Fatalf("warnings %v, want one with %q", ws, tc.want)
			}
		})
	}
}

func TestWarnings10kUsers(t *testing.T) {
	// 10,000 more users, half of them in a group no rule allows.
	text := strings.Replace(bigTenantYAML(2000), "users:\n", "users:\n"+manyUsers(10000), 1)
	tn, err := Parse("big.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if ws := tn.Warnings(); len(ws) != 1 || !strings.Contains(ws[0].Msg, "5000 users are steered to apps") {
		t.Fatalf("warnings %v", ws)
	}
}

func manyUsers(n int) string {
	var b strings.Builder
	for i := range n {
		g := "staff"
		if i%2 == 1 {
			g = "guests"
		}
		b.WriteString("  - {upn: u" + strconv.Itoa(i) + "@big.test, groups: [" + g + "]}\n")
	}
	return b.String()
}

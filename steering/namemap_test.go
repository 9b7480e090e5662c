package steering

import (
	"fmt"
	"testing"
)

// TestNameMap checks the map against names it keeps no copy of: each rule's
// name comes from its host as written, in any case, with a trailing dot or
// as a wildcard.
func TestNameMap(t *testing.T) {
	const n = 1000
	hosts := make([]string, n+1)
	for i := range n {
		switch i % 3 {
		case 0:
			hosts[i] = fmt.Sprintf("n%d.example", i)
		case 1:
			hosts[i] = fmt.Sprintf("N%d.Example.", i)
		default:
			hosts[i] = fmt.Sprintf("*.n%d.example", i)
		}
	}
	hosts[n] = "n7.EXAMPLE" // a second rule for n7.example
	h := newHostList(hosts, 0)
	host := &h
	var m nameMap
	if _, ok := m.get([]byte("a.example"), host); ok {
		t.Fatal("empty map found a name")
	}
	for i := range n {
		if _, ok := m.set([]byte(fmt.Sprintf("n%d.example", i)), int32(i), host); ok {
			t.Fatalf("name %d found before it was set", i)
		}
	}
	if prev, ok := m.set([]byte("n7.example"), n, host); !ok || prev != 7 {
		t.Fatalf("set again = %d, %v; want 7, true", prev, ok)
	}
	m.trim(host)
	if len(m.slots) != 2048 {
		t.Errorf("%d slots after trim, want 2048", len(m.slots))
	}
	for i := range n {
		want := int32(i)
		if i == 7 {
			want = n
		}
		if got, ok := m.get([]byte(fmt.Sprintf("n%d.example", i)), host); !ok || got != want {
			t.Fatalf("get n%d = %d, %v; want %d", i, got, ok, want)
		}
	}
	for _, miss := range []string{"n1000.example", "n1.example.", "N1.example", "n2.example.x", "example", ""} {
		if _, ok := m.get([]byte(miss), host); ok {
			t.Errorf("found %q, never set", miss)
		}
	}
	if m.n != n {
		t.Errorf("%d names, want %d", m.n, n)
	}
}

func TestHostIs(t *testing.T) {
	tests := []struct {
		host, name string
		want       bool
	}{
		{"wiki.corp.example", "wiki.corp.example", true},
		{"Wiki.CORP.example.", "wiki.corp.example", true},
		{"*.corp.example", "corp.example", true},
		{"*.Corp.Example.", "corp.example", true},
		{"*.corp.example", "*.corp.example", false},
		{"wiki.corp.example", "wiki.corp.exampl", false},
		{"wiki.corp.example", "wiki.corp.example.", false},
		{"wiki_1.corp.example", "wiki_1.corp.example", true},
	}
	for _, tt := range tests {
		if got := hostIs(tt.host, []byte(tt.name)); got != tt.want {
			t.Errorf("hostIs(%q, %q) = %v, want %v", tt.host, tt.name, got, tt.want)
		}
		var buf [maxName]byte
		if got := string(hostName(&buf, tt.host)) == tt.name; got != tt.want {
			t.Errorf("hostName(%q) = %q, want it to equal %q: %v", tt.host, hostName(&buf, tt.host), tt.name, tt.want)
		}
	}
}

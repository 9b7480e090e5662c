package ddns

import (
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestLabel(t *testing.T) {
	long := strings.Repeat("a", 62) + "-b" + strings.Repeat("c", 10)
	for _, tc := range []struct{ name, host, want string }{
		{"plain", "laptop1", "laptop1"},
		{"upper case", "DESKTOP-AB12CD", "desktop-ab12cd"},
		{"fqdn keeps the first label", "laptop1.corp.example.com", "laptop1"},
		{"macOS name", "Alice's-MacBook-Pro.local", "alice-s-macbook-pro"},
		{"spaces and non-ASCII", "Jörg’s MacBook Pro", "j-rg-s-macbook-pro"},
		{"runs of invalid characters become one dash", "a__b  c", "a-b-c"},
		{"underscore", "build_agent_7", "build-agent-7"},
		{"no dash at either end", "-_x_-", "x"},
		{"no IDNA-like double dash", "ab--cd", "ab-cd"},
		{"63 octets at most", strings.Repeat("x", 80), strings.Repeat("x", 63)},
		{"cut does not end on a dash", long, strings.Repeat("a", 62)},
		{"digits only", "12345", "12345"},
		{"nothing usable", "☃☃", ""},
		{"empty", "", ""},
		{"only a dot", ".corp", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Label(tc.host); got != tc.want {
				t.Fatalf("Label(%q) = %q, want %q", tc.host, got, tc.want)
			}
		})
	}
}

func TestNameFor(t *testing.T) {
	for _, tc := range []struct{ name, host, suffix, want, err string }{
		{"suffix without a dot", "Laptop1", "corp.test", "laptop1.corp.test.", ""},
		{"suffix with a dot, upper case", "laptop1.home", "CORP.Test.", "laptop1.corp.test.", ""},
		{"no label", "___", "corp.test", "", "no DNS label"},
		{"no suffix", "laptop1", "", "", "suffix"},
		{"bad suffix", "laptop1", "a..b", "", "suffix"},
		{"too long", "laptop1", strings.Repeat(strings.Repeat("s", 61)+".", 4), "", "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NameFor(tc.host, tc.suffix)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("NameFor(%q, %q) = %q, %v; want an error with %q", tc.host, tc.suffix, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NameFor(%q, %q) = %q, %v; want %q", tc.host, tc.suffix, got, err, tc.want)
			}
		})
	}
}

func TestHostName(t *testing.T) {
	name, err := HostName("corp.test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(name, ".corp.test.") || strings.Count(name, ".") != 3 {
		t.Fatalf("HostName = %q, want <label>.corp.test.", name)
	}
}

var validLabel = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$`)

// FuzzLabel: whatever the host name, the label is empty or a valid
// hostname label, and NameFor either fails or gives a valid domain name.
func FuzzLabel(f *testing.F) {
	for _, s := range []string{"laptop1", "Alice's-MacBook-Pro.local", "Jörg’s MacBook", strings.Repeat("x-", 40), "", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		label := Label(host)
		if !validLabel.MatchString(label) || strings.Contains(label, "--") {
			t.Fatalf("Label(%q) = %q", host, label)
		}
		name, err := NameFor(host, "corp.test")
		if err != nil {
			if label != "" {
				t.Fatalf("NameFor(%q): %v with label %q", host, err, label)
			}
			return
		}
		if _, ok := dns.IsDomainName(name); !ok || name != label+".corp.test." {
			t.Fatalf("NameFor(%q) = %q", host, name)
		}
	})
}

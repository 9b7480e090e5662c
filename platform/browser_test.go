package platform

import (
	"slices"
	"testing"
)

func TestBrowserCommand(t *testing.T) {
	const u = "https://tenant.example/v1/idp/authorize?client_id=ztagent&state=abc"
	tests := []struct {
		goos, url, name string
		args            []string
		fails           bool
	}{
		{goos: "linux", url: u, name: "xdg-open", args: []string{u}},
		{goos: "freebsd", url: u, name: "xdg-open", args: []string{u}},
		{goos: "darwin", url: u, name: "open", args: []string{u}},
		{goos: "windows", url: u, name: "rundll32", args: []string{"url.dll,FileProtocolHandler", u}},
		{goos: "plan9", url: u, fails: true},
		{goos: "linux", url: "file:///etc/passwd", fails: true},
		{goos: "windows", url: "javascript:alert(1)", fails: true},
		{goos: "linux", url: "/relative", fails: true},
		{goos: "windows", url: "https://h/a b\"&calc", name: "rundll32",
			args: []string{"url.dll,FileProtocolHandler", "https://h/a%20b%22&calc"}},
	}
	for _, tc := range tests {
		t.Run(tc.goos+" "+tc.url, func(t *testing.T) {
			name, args, err := browserCommand(tc.goos, tc.url)
			if tc.fails {
				if err == nil {
					t.Fatalf("accepted: %s %v", name, args)
				}
				return
			}
			if err != nil || name != tc.name || !slices.Equal(args, tc.args) {
				t.Fatalf("got %s %q %v, want %s %q", name, args, err, tc.name, tc.args)
			}
		})
	}
}

package enroll

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestUPNFor(t *testing.T) {
	tests := []struct {
		login  string
		params []string
		want   string // "" = error
	}{
		{"alice", []string{"domain=demo.test"}, "alice@demo.test"},
		{"Alice", []string{"domain=demo.test"}, "alice@demo.test"},
		{`CORP\alice`, []string{"domain=demo.test"}, "alice@demo.test"},
		{"alice@corp.test", nil, "alice@corp.test"},
		{"alice", []string{"upn=boss@demo.test"}, "boss@demo.test"},
		{"alice", nil, ""},
		{`CORP\`, []string{"domain=demo.test"}, ""},
		{"a b", []string{"domain=demo.test"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.login, func(t *testing.T) {
			p, err := ParseParams(tc.params)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UPNFor(tc.login, p)
			if got != tc.want || (tc.want == "") != (err != nil) {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
			if err != nil && !isReason(err, ReasonBadParameter) {
				t.Errorf("error %v is not a bad_parameter *Error", err)
			}
		})
	}
}

func TestUserStateDir(t *testing.T) {
	a := UserStateDir("/var/lib/ztagent", "Alice@Demo.test")
	if a != UserStateDir("/var/lib/ztagent", "alice@demo.test") {
		t.Error("case matters")
	}
	if a == UserStateDir("/var/lib/ztagent", "bob@demo.test") {
		t.Error("two users share a directory")
	}
	evil := UserStateDir("/var/lib/ztagent", "../../etc/passwd@x")
	if !strings.HasPrefix(evil, filepath.Join("/var/lib/ztagent", "users")+string(filepath.Separator)) {
		t.Errorf("escaped the state directory: %s", evil)
	}
}

func isReason(err error, reason string) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == reason
}

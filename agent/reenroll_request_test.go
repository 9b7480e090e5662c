package agent

import (
	"slices"
	"strings"
	"testing"
)

func TestDecodeReenroll(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string // nil: refused
	}{
		{"one parameter", `{"args":["enrollauthtoken=abc"]}`, []string{"enrollauthtoken=abc"}},
		{"two parameters", `{"args":["enrollauthtoken=a","enrollencryptiontoken=b"]}` + "\n", []string{"enrollauthtoken=a", "enrollencryptiontoken=b"}},
		{"clearing a key", `{"args":["userkey="]}`, []string{"userkey="}},
		{"null", `null`, nil},
		{"empty object", `{}`, nil},
		{"args null", `{"args":null}`, nil},
		{"args empty: the settings in force", `{"args":[]}`, []string{}},
		{"unknown field", `{"args":["enrollauthtoken=a"],"force":true}`, nil},
		{"misspelt field", `{"arg":["enrollauthtoken=a"]}`, nil},
		{"trailing data", `{"args":["enrollauthtoken=a"]} {}`, nil},
		{"two objects", `{"args":["enrollauthtoken=a"]}{"args":["x=y"]}`, nil},
		{"empty body", ``, nil},
		{"not key=value", `{"args":["s3cret-token"]}`, nil},
		{"no key", `{"args":["=value"]}`, nil},
		{"wrong type", `{"args":"enrollauthtoken=a"}`, nil},
		{"array", `[]`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := decodeReenroll(strings.NewReader(tc.body))
			switch {
			case tc.want == nil && err == nil:
				t.Fatalf("accepted as %q", req.Args)
			case tc.want != nil && (err != nil || !slices.Equal(req.Args, tc.want)):
				t.Fatalf("got %q, %v; want %q", req.Args, err, tc.want)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Fatalf("error echoes a secret: %v", err)
			}
		})
	}
}

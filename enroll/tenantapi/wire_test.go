package tenantapi

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDecodeAnswer(t *testing.T) {
	type answer struct {
		Tenant string `json:"tenant"`
	}
	broken := errors.New("connection reset by peer")
	tests := []struct {
		name  string
		r     io.Reader
		limit int64
		want  error // nil, ErrAnswerTooLarge or ErrAnswerCut; "malformed" otherwise
		bad   bool
	}{
		{"ok", strings.NewReader(`{"tenant":"demo","newer_field":1}` + "\n"), 64, nil, false},
		{"exactly the limit", strings.NewReader(`{"tenant":"demo"}`), int64(len(`{"tenant":"demo"}`)), nil, false},
		{"one byte over", strings.NewReader(`{"tenant":"demo"} `), int64(len(`{"tenant":"demo"}`)), ErrAnswerTooLarge, false},
		{"far over", strings.NewReader(`{"tenant":"` + strings.Repeat("x", 1000) + `"}`), 100, ErrAnswerTooLarge, false},
		{"read error", io.MultiReader(strings.NewReader(`{"tena`), iotest.ErrReader(broken)), 64, ErrAnswerCut, false},
		{"ends inside the JSON", strings.NewReader(`{"tenant":"de`), 64, ErrAnswerCut, false},
		{"not JSON", strings.NewReader(`<html>proxy login</html>`), 64, nil, true},
		{"empty", strings.NewReader(``), 64, nil, true},
		{"wrong type", strings.NewReader(`{"tenant":7}`), 64, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			err := DecodeAnswer(tc.r, tc.limit, &a)
			switch {
			case tc.bad:
				if err == nil || errors.Is(err, ErrAnswerCut) || errors.Is(err, ErrAnswerTooLarge) ||
					!strings.HasPrefix(err.Error(), "malformed JSON") {
					t.Fatalf("err = %v, want malformed JSON", err)
				}
			case tc.want == nil:
				if err != nil || a.Tenant != "demo" {
					t.Fatalf("err = %v, answer %+v", err, a)
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	var a answer
	err := DecodeAnswer(strings.NewReader(strings.Repeat(" ", 200)), 100, &a)
	if err == nil || err.Error() != "the tenant's answer is larger than 100 bytes" {
		t.Fatalf("too large says %q", err)
	}
	if err := DecodeAnswer(io.MultiReader(strings.NewReader(`{`), iotest.ErrReader(broken)), 64, &a); !errors.Is(err, broken) {
		t.Fatalf("cut answer does not wrap the read error: %v", err)
	}
}

// TestEnrollAnswerFitsSealedConfig: the largest config the tenant may send,
// sealed, fits the enrollment answer's limit with room for the rest.
func TestEnrollAnswerFitsSealedConfig(t *testing.T) {
	plain := make([]byte, MaxConfigBody)
	box, err := SealConfig("enc-token-0123456789abcdef", "t", "d", plain)
	if err != nil {
		t.Fatal(err)
	}
	if room := MaxEnrollAnswer - len(box.Ciphertext); room < 32<<10 {
		t.Fatalf("a sealed %d-byte config leaves %d bytes for the rest of the answer", MaxConfigBody, room)
	}
	if _, err := OpenConfig(box, "enc-token-0123456789abcdef", "t", "d"); err == nil || strings.Contains(err.Error(), "larger") {
		// zeros are not JSON: the error must be about the content, not the size
		t.Fatalf("open the largest sealed config: %v", err)
	}
}

package steering

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTamperOverride(t *testing.T) {
	pub, priv := NewTamperOverrideKey()
	other, _ := NewTamperOverrideKey()
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	code, err := IssueTamperOverride(priv, "dev-1", now.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	far, _ := IssueTamperOverride(priv, "dev-1", now.Add(MaxOverrideValidity+time.Hour))
	flipped := []byte(code)
	flipped[len(flipped)-3] ^= 1
	cases := []struct {
		name, key, code, device string
		at                      time.Time
		want                    error
	}{
		{"valid", pub, code, "dev-1", now, nil},
		{"valid until the last second", pub, code, "dev-1", now.Add(2*time.Hour - time.Second), nil},
		{"expired", pub, code, "dev-1", now.Add(2 * time.Hour), ErrOverrideExpired},
		{"another device", pub, code, "dev-2", now, ErrOverrideCode},
		{"another tenant's key", other, code, "dev-1", now, ErrOverrideCode},
		{"altered", pub, string(flipped), "dev-1", now, ErrOverrideCode},
		{"garbage", pub, "not-a-code", "dev-1", now, ErrOverrideCode},
		{"too far ahead", pub, far, "dev-1", now, ErrOverrideCode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exp, err := CheckTamperOverride(tc.key, tc.code, tc.device, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && !exp.Equal(now.Add(2*time.Hour)) {
				t.Fatalf("expiry %v", exp)
			}
		})
	}
}

func TestTamperOverrideKeyValidated(t *testing.T) {
	pub, _ := NewTamperOverrideKey()
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{pub, true},
		{strings.TrimPrefix(pub, "ed25519:"), false},
		{"ed25519:AAAA", false},
	} {
		_, err := Compile(&Config{Apps: []App{}, Client: ClientConfig{TamperOverrideKey: tc.key}})
		if (err == nil) != tc.ok {
			t.Errorf("key %q: %v", tc.key, err)
		}
	}
}

func FuzzCheckTamperOverride(f *testing.F) {
	pub, priv := NewTamperOverrideKey()
	code, _ := IssueTamperOverride(priv, "d", time.Now().Add(time.Hour))
	f.Add(code)
	f.Fuzz(func(t *testing.T, c string) {
		CheckTamperOverride(pub, c, "d", time.Now())
	})
}

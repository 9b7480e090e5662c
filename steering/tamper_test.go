package steering

import (
	"errors"
	"strings"
	"testing"
)

func TestTamperPassword(t *testing.T) {
	h, err := HashTamperPassword("open sesame")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckTamperPassword(h, "open sesame"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := CheckTamperPassword(h, "open sesame!"); !errors.Is(err, ErrTamperPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	cfg := &Config{Apps: []App{}, Client: ClientConfig{TamperPassword: h}}
	if _, err := Compile(cfg); err != nil {
		t.Fatalf("a config with a tamper password: %v", err)
	}
	for _, bad := range []string{"secret", "pbkdf2-sha256$10$c2FsdHNhbHQ$" + strings.Repeat("A", 43), "bcrypt$x$y$z"} {
		cfg.Client.TamperPassword = bad
		_, err := Compile(cfg)
		if err == nil || !strings.Contains(err.Error(), "client.tamper_password") || strings.Contains(err.Error(), "secret") {
			t.Errorf("tamper_password %q: %v", bad, err)
		}
	}
}

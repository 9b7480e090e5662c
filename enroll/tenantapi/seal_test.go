package tenantapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ztagent/ztagent/steering"
)

// Encryption tokens of two token sets, and a wrong one.
const (
	encSet1 = "enc-token-set-one-a81f3c"
	encSet2 = "enc-token-set-two-6b20de"
	encBad  = "enc-token-wrong-0000000"
)

func TestSealConfig(t *testing.T) {
	plain := []byte(`{"tenant":"demo","user":"alice@demo.test"}`)
	box, err := SealConfig(encSet1, "demo", "dev1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(box.Ciphertext, "alice") {
		t.Fatal("ciphertext carries the plaintext")
	}
	if cfg, err := OpenConfig(box, encSet1, "demo", "dev1"); err != nil || cfg.User != "alice@demo.test" {
		t.Fatalf("open: %v %+v", err, cfg)
	}
	tampered := *box
	tampered.Ciphertext = "A" + box.Ciphertext[1:]
	if tampered.Ciphertext == box.Ciphertext {
		tampered.Ciphertext = "B" + box.Ciphertext[1:]
	}
	for name, tc := range map[string]struct {
		box                   *SealedConfig
		token, tenant, device string
		want                  error
	}{
		"wrong token":   {box, encSet2, "demo", "dev1", ErrSealOpen},
		"other device":  {box, encSet1, "demo", "dev2", ErrSealOpen},
		"other tenant":  {box, encSet1, "other", "dev1", ErrSealOpen},
		"tampered":      {&tampered, encSet1, "demo", "dev1", ErrSealOpen},
		"bad algorithm": {&SealedConfig{Alg: "none", Nonce: box.Nonce, Ciphertext: box.Ciphertext}, encSet1, "demo", "dev1", nil},
		"bad nonce":     {&SealedConfig{Alg: sealAlg, Nonce: "AAAA", Ciphertext: box.Ciphertext}, encSet1, "demo", "dev1", nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := OpenConfig(tc.box, tc.token, tc.tenant, tc.device)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// BenchmarkSealOpenConfig seals and opens the initial config of a user steered
// to 10,000 apps (what encrypted enrollment adds, per device).
func BenchmarkSealOpenConfig(b *testing.B) {
	cfg := AgentConfig{Tenant: "big", User: "u@big.test"}
	for i := range 10000 {
		cfg.Steering.Apps = append(cfg.Steering.Apps, steering.App{ID: fmt.Sprintf("app%d", i),
			Hosts: []string{fmt.Sprintf("app%d.corp.test", i)}, TCP: "80,443", Publishers: []string{"pub1"}})
	}
	plain, err := json.Marshal(&cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		box, err := SealConfig("enc-token-0123456789abcdef", "big", "dev1", plain)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := OpenConfig(box, "enc-token-0123456789abcdef", "big", "dev1"); err != nil {
			b.Fatal(err)
		}
	}
}

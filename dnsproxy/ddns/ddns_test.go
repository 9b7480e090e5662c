package ddns

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func testConfig(server string) Config {
	return Config{
		Server: server, Zone: testZone, Name: "laptop1.corp.test.", KeyName: testKey,
		Secret: testSecret, Owner: "device-1", TTL: 30 * time.Second,
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		err    string // "" when New must accept it
	}{
		{"valid", func(*Config) {}, ""},
		{"algorithm in upper case with a dot", func(c *Config) { c.Algorithm = "HMAC-SHA256." }, ""},
		{"hmac-sha512", func(c *Config) { c.Algorithm = "hmac-sha512" }, ""},
		{"hmac-md5 refused", func(c *Config) { c.Algorithm = "hmac-md5.sig-alg.reg.int" }, `algorithm "hmac-md5.sig-alg.reg.int": not supported`},
		{"hmac-sha1 refused", func(c *Config) { c.Algorithm = "hmac-sha1" }, "not supported"},
		{"gss-tsig refused", func(c *Config) { c.Algorithm = "gss-tsig" }, "not supported"},
		{"server without a port", func(c *Config) { c.Server = "10.20.0.12" }, ""},
		{"no server", func(c *Config) { c.Server = "" }, `server "": empty`},
		{"bad server", func(c *Config) { c.Server = "a:b:c" }, "not host:port"},
		{"no zone", func(c *Config) { c.Zone = "" }, `zone ""`},
		{"name outside the zone", func(c *Config) { c.Name = "laptop1.other.test" }, "not a name inside zone corp.test."},
		{"name is the apex", func(c *Config) { c.Name = "corp.test" }, "not a name inside zone"},
		{"no key name", func(c *Config) { c.KeyName = "" }, "key name"},
		{"secret not base64", func(c *Config) { c.Secret = "not base64!" }, "secret: not a non-empty base64 key"},
		{"empty secret", func(c *Config) { c.Secret = "" }, "secret"},
		{"no owner", func(c *Config) { c.Owner = "" }, `owner "": empty`},
		{"TTL in fractions", func(c *Config) { c.TTL = 1500 * time.Millisecond }, "ttl"},
		{"TTL too long", func(c *Config) { c.TTL = 48 * time.Hour }, "ttl"},
		{"refresh too short", func(c *Config) { c.Refresh = time.Millisecond }, "refresh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("127.0.0.1:53")
			tc.change(&cfg)
			_, err := New(cfg, nil)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("New: %v; want an error with %q", err, tc.err)
			}
		})
	}
}

func TestNewNormalises(t *testing.T) {
	cfg := testConfig("10.20.0.12")
	cfg.Name, cfg.Zone, cfg.TTL = "Laptop1.CORP.test", "corp.test", 0
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.Server != "10.20.0.12:53" || c.cfg.Name != "laptop1.corp.test." || c.cfg.Zone != "corp.test." ||
		c.ttl != 60 || c.cfg.Refresh != DefaultRefresh || c.algorithm != "hmac-sha256." {
		t.Fatalf("normalised config: %+v, ttl %d, algorithm %s", c.cfg, c.ttl, c.algorithm)
	}
}

func TestSecretRedacted(t *testing.T) {
	cfg := testConfig("127.0.0.1:53")
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, testSecret) {
			t.Fatalf("secret printed: %s", s)
		}
	}
}

package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ztagent/ztagent/enroll"
	"github.com/ztagent/ztagent/enroll/tenantapi"
)

// bigTenantYAML is a tenant of n apps shaped like steering's 10k benchmark:
// per app two exact names, a wildcard, a CIDR (IPv6 for one app in ten) and a
// range, port sets drawn from what real tenants use, two publishers; alice is
// steered to every app and allowed all of them. Secure enrollment is on but not
// enforced, with an encryption token, so one tenant serves both the plain and
// the sealed initial config.
func bigTenantYAML(n int) string {
	tcpSets := []string{"443", "80,443", "22", "3389", "443,8443,8000-8099", "1-65535", "1433,1521,3306,5432", "25,465,587"}
	udpSets := []string{"", "", "", "53", "5060-5061,10000-20000", "500,4500"}
	var y strings.Builder
	y.WriteString("tenant: big\norg_key: " + demoOrgKey + "\npop: {address: 10.10.0.1:8443, server_name: pop.big.test}\n")
	y.WriteString("users:\n  - {upn: alice@big.test, groups: [staff]}\n")
	y.WriteString("publishers:\n  - {name: pub1, token: pub1-token-0123456789abcdef}\n  - {name: pub2, token: pub2-token-0123456789abcdef}\n")
	y.WriteString("apps:\n")
	for i := range n {
		a, b, dept := i/256, i%256, i%97
		cidr := fmt.Sprintf("10.%d.%d.0/25", a, b)
		if i%10 == 0 {
			cidr = fmt.Sprintf("fd00:%x:%x::/48", a, b)
		}
		udp := ""
		if u := udpSets[i%len(udpSets)]; u != "" {
			udp = ", udp: \"" + u + "\""
		}
		fmt.Fprintf(&y, "  - {id: app-%05d, name: \"Service %d of department %d\", hosts: [svc%d.dept%d.corp.example, api-%d.internal.example, \"*.app%d.dept%d.corp.example\", \"%s\", \"10.%d.%d.130-10.%d.%d.200\"], tcp: \"%s\"%s, publishers: [pub1, pub2]}\n",
			i, i, dept, i, dept, i, i, dept, cidr, a, b, a, b, tcpSets[i%len(tcpSets)], udp)
	}
	y.WriteString("steering:\n  - {name: all, users: [\"*\"], apps: [\"*\"]}\n")
	y.WriteString("policy:\n  - {name: all, groups: [staff], apps: [\"*\"]}\n")
	y.WriteString("secure_enrollment:\n  tokens:\n    - {name: set1, auth_token: " + authSet1 + ", encryption_token: " + encSet1 + ", created: 2026-11-01}\n")
	return y.String()
}

func bigTenant(t testing.TB, n int) *Tenant {
	t.Helper()
	tn, err := Parse("big.yaml", []byte(bigTenantYAML(n)))
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// countBytes counts the bytes of the enrollment answers the handler writes.
func countBytes(n *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&countingWriter{ResponseWriter: w, n: n}, r)
		})
	}
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.ResponseWriter.Write(p)
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// TestEnroll10kApps enrolls against a tenant of 10,000 apps (the steering
// benchmark's scale), with the initial config in the clear and sealed, then
// fetches the config over mutual TLS: both paths carry every app, and the
// tenant keeps one device record per enrollment, confirmed by the fetch.
// Before the answer was sized from the config, this failed at about 650 apps
// with "malformed enrollment answer".
func TestEnroll10kApps(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000-app tenant")
	}
	const apps = 10000
	t0 := time.Now()
	tn := bigTenant(t, apps)
	t.Logf("tenant of %d apps parsed in %v", apps, time.Since(t0).Round(time.Millisecond))
	var written atomic.Int64
	l := newLabWith(t, tn, zap.NewNop(), nil, labOptions{wrap: countBytes(&written)})
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"plain", nil},
		{"sealed", []string{"enrollauthtoken=" + authSet1, "enrollencryptiontoken=" + encSet1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			written.Store(0)
			start := time.Now()
			id, err := enroll.EnrollUPN(context.Background(), l.params("alice@big.test", tc.extra...), zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if id.InitialConfig == nil || len(id.InitialConfig.Steering.Apps) != apps {
				t.Fatalf("initial config carries %d apps, want %d", appCount(id.InitialConfig), apps)
			}
			if err := id.InitialConfig.Steering.Validate(); err != nil {
				t.Fatalf("initial config does not validate: %v", err)
			}
			answer := written.Load()
			t.Logf("enrollment (%s) with %d apps: %v, answer %d bytes (limit %d)", tc.name, apps,
				took.Round(time.Millisecond), answer, tenantapi.MaxEnrollAnswer)

			cc := newCC(t, id)
			defer cc.Close()
			written.Store(0)
			start = time.Now()
			cfg, _, err := cc.Fetch(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Steering.Apps) != apps {
				t.Fatalf("fetched config carries %d apps", len(cfg.Steering.Apps))
			}
			t.Logf("config fetch: %v, %d bytes (limit %d)", time.Since(start).Round(time.Millisecond), written.Load(), tenantapi.MaxConfigBody)
			rec := findDevice(t, l, id.DeviceID)
			if rec.Confirmed.IsZero() || rec.Method != "upn" {
				t.Errorf("device record after the fetch: %+v", rec)
			}
		})
	}
	if n := len(l.h.devices.list()); n != 2 {
		t.Errorf("%d device records for 2 enrollments", n)
	}
}

func appCount(cfg *tenantapi.AgentConfig) int {
	if cfg == nil {
		return -1
	}
	return len(cfg.Steering.Apps)
}

func findDevice(t *testing.T, l *lab, id string) deviceRecord {
	t.Helper()
	for _, r := range l.h.devices.list() {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no device record for %s", id)
	return deviceRecord{}
}

// TestConfigTooLargeIsRefusedByTheTenant: a config larger than agents accept
// is refused by the tenant with the user and the size, at enrollment (before
// anything is signed or recorded) and at a config fetch; the agent repeats
// the reason.
func TestConfigTooLargeIsRefusedByTheTenant(t *testing.T) {
	l := newLab(t, loadDemo(t), zap.NewNop())
	id := l.enroll("alice@demo.test")
	l.h.maxConfig = 200 // smaller than alice's config
	_, err := enroll.EnrollUPN(context.Background(), l.params("alice@demo.test"), zap.NewNop())
	var e *enroll.Error
	if !errors.As(err, &e) || e.Reason != tenantapi.ReasonConfigTooLarge || !strings.Contains(e.Error(), "more than the 200 an agent accepts") {
		t.Fatalf("enrollment with a too large config: %v", err)
	}
	if n := len(l.h.devices.list()); n != 1 {
		t.Errorf("%d device records after a refused enrollment, want 1", n)
	}
	cc := newCC(t, id)
	defer cc.Close()
	if _, _, err := cc.Fetch(context.Background(), ""); !errors.As(err, &e) || e.Reason != tenantapi.ReasonConfigTooLarge {
		t.Fatalf("fetch of a too large config: %v", err)
	}
}

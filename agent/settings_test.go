package agent

import (
	"context"
	"testing"

	"github.com/ztagent/ztagent/agent/ctlapi"
	"github.com/ztagent/ztagent/enroll"
)

func TestPendingSettings(t *testing.T) {
	base := enroll.Params{Host: "tenant.test", Token: "org-key-1", UPN: "alice@test.example", Mode: ""}
	settings := func(p enroll.Params) []enroll.Setting {
		_, s, err := enroll.MergeParams(p, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name    string
		change  func(*enroll.Params)
		pending []string
	}{
		{"unchanged", func(*enroll.Params) {}, nil},
		{"new UPN", func(p *enroll.Params) { p.UPN = "bob@test.example" }, []string{"upn"}},
		{"new host and org key", func(p *enroll.Params) { p.Host, p.Token = "other.test", "org-key-2" }, []string{"host", "token"}},
		{"a token added", func(p *enroll.Params) { p.EnrollAuthToken = "T" }, []string{"enrollauthtoken"}},
		{"UPN removed", func(p *enroll.Params) { p.UPN = "" }, nil},
		{"runtime setting", func(p *enroll.Params) { p.PreLogonUser = "pre@test.example" }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := base
			tc.change(&now)
			var got []string
			for _, s := range pendingSettings(settings(now), now, fingerprints(base)) {
				if s.Pending != "" {
					got = append(got, s.Key)
				}
			}
			if len(got) != len(tc.pending) {
				t.Fatalf("pending %v, want %v", got, tc.pending)
			}
			for i := range got {
				if got[i] != tc.pending[i] {
					t.Fatalf("pending %v, want %v", got, tc.pending)
				}
			}
		})
	}
}

// TestMDMChangeIsPendingUntilReenrolled: an MDM change to an
// enrollment-time setting shows as pending; `ztdiag -e` applies it.
func TestMDMChangeIsPendingUntilReenrolled(t *testing.T) {
	a := newFakeAgent(t, "", nil)
	a.start(t)
	a.mdm.Push(map[string]string{"upn": "bob@test.example"})
	a.refreshSettings()
	pending := func() map[string]string {
		out := map[string]string{}
		st, err := a.ctl.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.Settings {
			if s.Pending != "" {
				out[s.Key] = s.Pending
			}
		}
		return out
	}
	if got := pending(); len(got) != 1 || got["upn"] != pendingNote {
		t.Fatalf("pending after an MDM change: %v", got)
	}
	if st := a.Status(); st.Enrollment.User != "alice@test.example" {
		t.Fatalf("running as %s before re-enrolling", st.Enrollment.User)
	}
	es, err := a.ctl.Reenroll(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a.Agent, "running as the MDM's user", func(st ctlapi.Status) bool {
		return running(st) && st.Enrollment.DeviceID == es.DeviceID && st.Enrollment.User == "bob@test.example"
	})
	if got := pending(); len(got) != 0 {
		t.Fatalf("still pending after re-enrolling: %v", got)
	}
}

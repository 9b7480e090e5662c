package agent

import (
	"context"
	"net/http"
	"testing"

	"github.com/ztagent/ztagent/agent/ctlapi"
)

// TestSpeedTest: -g moves its bytes through the PoP to the publisher the
// probe round selected, both ways, and says how fast; an app with no
// publisher online is refused.
func TestSpeedTest(t *testing.T) {
	cloud := startCloudWith(t, selectTenantYAML)
	runPublisher(t, cloud, "pub1", cloud.popAddr)
	a := startTestAgent(t, cloud)
	waitStatus(t, a.Agent, "pub1 selected", func(st ctlapi.Status) bool { return publishersOf(st, "web")["pub1"].Selected })
	c := &ctlapi.Client{Socket: a.cfg.SocketPath}
	ctx := context.Background()
	for _, dir := range []string{"download", "upload"} {
		r, err := c.Speed(ctx, ctlapi.SpeedRequest{Direction: dir, Bytes: 2 << 20, App: "web"})
		if err != nil || r.Bytes != 2<<20 || r.Publisher != "pub1" || r.App != "web" || r.Mbps <= 0 || r.PoP == "" {
			t.Fatalf("%s: %+v, %v", dir, r, err)
		}
		t.Logf("%s: %.0f Mbit/s", dir, r.Mbps)
	}
	if r, err := c.Speed(ctx, ctlapi.SpeedRequest{Direction: "download", Bytes: 1000}); err != nil || r.Publisher != "pub1" {
		t.Fatalf("with no app named: %+v, %v", r, err)
	}
	for _, req := range []ctlapi.SpeedRequest{
		{Direction: "download", Bytes: 1000, App: "nope"},
		{Direction: "sideways", Bytes: 1000},
		{Direction: "upload", Bytes: 0},
	} {
		if _, err := c.Speed(ctx, req); !isStatus(err, http.StatusConflict) && !isStatus(err, http.StatusBadRequest) {
			t.Errorf("%+v: %v, want refused", req, err)
		}
	}
}

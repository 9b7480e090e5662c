package pop

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/ztagent/ztagent/tunnel/l7"
)

// TestSpeed: a speed test moves its bytes through the PoP to an online
// publisher of an app the device may use, both ways; anything else is
// refused as a probe is.
func TestSpeed(t *testing.T) {
	l := newLab(t, labOptions{})
	ctx := context.Background()
	for _, dir := range []string{l7.SpeedDownload, l7.SpeedUpload} {
		res, err := l.client.Speed(ctx, appEcho, "pub-1", dir, 4<<20)
		if err != nil || res.Bytes != 4<<20 || res.Duration <= 0 || res.Mbps() <= 0 {
			t.Fatalf("%s: %+v, %v", dir, res, err)
		}
		t.Logf("%s: %d bytes in %v, %.0f Mbit/s", dir, res.Bytes, res.Duration, res.Mbps())
	}
	for _, tc := range []struct {
		name, app, pub string
		size           int64
		status         int
	}{
		{"not a publisher of the app", appEcho, "pub-2", 1000, http.StatusForbidden},
		{"app denied", appDenied, "pub-1", 1000, http.StatusForbidden},
		{"publisher offline", appOffline, "pub-offline", 1000, http.StatusServiceUnavailable},
		{"too large", appEcho, "pub-1", l7.MaxSpeedBytes + 1, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.client.Speed(ctx, tc.app, tc.pub, l7.SpeedDownload, tc.size)
			var re *l7.RefusedError
			if !errors.As(err, &re) || re.Status != tc.status {
				t.Fatalf("speed = %v, want status %d", err, tc.status)
			}
		})
	}
}

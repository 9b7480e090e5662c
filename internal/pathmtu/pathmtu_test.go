package pathmtu

import "testing"

func TestMSS(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		want       int
	}{
		{"IPv4", "10.10.0.1:8443", 1240},
		{"IPv4-mapped IPv6", "[::ffff:10.10.0.1]:8443", 1240},
		{"IPv6", "[2001:db8::1]:8443", 1220},
		{"wildcard listen", ":8443", 1220},
		{"name", "pop.example:443", 1220},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MSS(tc.addr); got != tc.want {
				t.Fatalf("MSS(%q) = %d, want %d", tc.addr, got, tc.want)
			}
		})
	}
}

func TestControlLeavesOtherNetworks(t *testing.T) {
	// A nil RawConn would panic if Control touched it.
	for _, n := range []string{"udp", "udp4", "udp6", "unix", "ip4:icmp"} {
		if err := Control(n, "10.0.0.1:53", nil); err != nil {
			t.Fatalf("Control(%q) = %v", n, err)
		}
	}
}

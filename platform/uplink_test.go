package platform

import (
	"context"
	"net"
	"testing"
)

func TestUplinkMTULoopback(t *testing.T) {
	lo := loopback(t)
	got, err := UplinkMTU(context.Background(), "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	if got != lo.MTU {
		t.Fatalf("UplinkMTU(127.0.0.1:9) = %d, want %s's %d", got, lo.Name, lo.MTU)
	}
}

func TestUplinkMTUUnresolvable(t *testing.T) {
	if _, err := UplinkMTU(context.Background(), "no-such-host.invalid:443"); err == nil {
		t.Fatal("UplinkMTU of an unresolvable name succeeded")
	}
}

func loopback(t *testing.T) net.Interface {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			return ifc
		}
	}
	t.Skip("no loopback interface")
	return net.Interface{}
}

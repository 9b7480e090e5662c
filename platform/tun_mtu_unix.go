//go:build linux || darwin

package platform

import (
	"fmt"

	"golang.zx2c4.com/wireguard/tun"
)

// setTUNMTU has nothing to do at creation on Linux and macOS: createTUN
// sets the interface's MTU when it creates the device.
func setTUNMTU(tun.Device, int) error { return nil }

// SetTUNMTU changes the MTU of the agent's TUN device after its creation
// (the agent creates the device before it knows the uplink's MTU, see the
// agent's createTUN). The device's MTU() reads the interface, so it follows.
func SetTUNMTU(dev tun.Device, mtu int) error {
	name, err := dev.Name()
	if err != nil {
		return fmt.Errorf("TUN name: %w", err)
	}
	if err := setInterfaceMTU(name, mtu); err != nil {
		return fmt.Errorf("set the MTU of TUN %q to %d: %w", name, mtu, err)
	}
	return nil
}

package platform

import (
	"fmt"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// setTUNMTU has nothing to do at creation on macOS: wireguard/tun sets the
// interface's MTU when it creates the device.
func setTUNMTU(tun.Device, int) error { return nil }

// SetTUNMTU changes the MTU of the agent's utun device after its creation
// (the agent creates the device before it knows the uplink's MTU, see
// agent's startTUN), with SIOCSIFMTU as wireguard/tun does at creation. The
// device's MTU() reads the interface, so it follows.
func SetTUNMTU(dev tun.Device, mtu int) error {
	name, err := dev.Name()
	if err != nil {
		return fmt.Errorf("TUN name: %w", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("socket for SIOCSIFMTU: %w", err)
	}
	defer unix.Close(fd)
	ifr := unix.IfreqMTU{MTU: int32(mtu)}
	copy(ifr.Name[:len(ifr.Name)-1], name)
	if err := unix.IoctlSetIfreqMTU(fd, &ifr); err != nil {
		return fmt.Errorf("set the MTU of TUN %q to %d: %w", name, mtu, err)
	}
	return nil
}

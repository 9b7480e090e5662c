package platform

import (
	"fmt"

	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"
)

// SetTUNMTU changes the MTU of the agent's Wintun device after its creation
// (the agent creates the device before it knows the uplink's MTU, see
// agent's startTUN): the MTU the device reports, and the adapter's.
func SetTUNMTU(dev tun.Device, mtu int) error {
	native, ok := dev.(*tun.NativeTun)
	if !ok {
		return fmt.Errorf("not a Wintun device: %T", dev)
	}
	native.ForceMTU(mtu)
	return setTUNMTU(dev, mtu)
}

// setTUNMTU sets the Wintun adapter's IP MTU (NlMtu) for both families.
// wireguard/tun only remembers the MTU it was given (the device's MTU()
// returns it); the adapter itself keeps Wintun's default, so without this
// Windows would hand the agent packets larger than the tunnel carries (and
// size TCP's MSS on them). A family that is off on the adapter is skipped;
// IPv6 gets at least its minimum, 1,280 (Windows refuses less; the agent's
// stack takes the larger packets it then reads).
func setTUNMTU(dev tun.Device, mtu int) error {
	if mtu <= 0 {
		return nil
	}
	native, ok := dev.(*tun.NativeTun)
	if !ok {
		return fmt.Errorf("not a Wintun device: %T", dev)
	}
	luid := winipcfg.LUID(native.LUID())
	for _, family := range []winipcfg.AddressFamily{windows.AF_INET, windows.AF_INET6} {
		row, err := luid.IPInterface(family)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read the adapter's interface: %w", err)
		}
		row.NLMTU = uint32(mtu)
		if family == windows.AF_INET6 {
			row.NLMTU = uint32(max(mtu, 1280))
		}
		if family == windows.AF_INET {
			row.SitePrefixLength = 0 // SetIpInterfaceEntry refuses any other for IPv4
		}
		if err := row.Set(); err != nil {
			return fmt.Errorf("set the adapter's MTU: %w", err)
		}
	}
	return nil
}

package platform

import (
	"errors"
	"fmt"
	"os"

	"golang.zx2c4.com/wireguard/tun"
)

// CreateTUN creates the agent's TUN device. The name is a request: macOS always
// picks a utunN name and Windows a wintun adapter; use the device's Name().
func CreateTUN(name string, mtu int) (tun.Device, error) {
	dev, err := createTUN(name, mtu)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("create TUN %q: %w (run as root/administrator, or grant CAP_NET_ADMIN)", name, err)
		}
		return nil, fmt.Errorf("create TUN %q: %w", name, err)
	}
	if err := setTUNMTU(dev, mtu); err != nil {
		dev.Close()
		return nil, fmt.Errorf("set the MTU of TUN %q to %d: %w", name, mtu, err)
	}
	return dev, nil
}

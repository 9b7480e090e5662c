//go:build !windows

package platform

import "golang.zx2c4.com/wireguard/tun"

// setTUNMTU has nothing to do on Linux and macOS: wireguard/tun sets the
// interface's MTU when it creates the device.
func setTUNMTU(tun.Device, int) error { return nil }

//go:build !linux

package platform

import "golang.zx2c4.com/wireguard/tun"

// createTUN is wireguard/tun's CreateTUN: its devices on macOS and Windows
// watch for changes without waking periodically.
func createTUN(name string, mtu int) (tun.Device, error) { return tun.CreateTUN(name, mtu) }

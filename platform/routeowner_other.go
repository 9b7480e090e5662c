//go:build !linux

package platform

import "net/netip"

func routeOwner(netip.Prefix, string) (string, error) { return "", nil }

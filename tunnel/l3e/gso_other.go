//go:build !linux

package l3e

import "net"

// gsoSupported: UDP segmentation offload is Linux's.
func gsoSupported(*net.UDPConn) bool { return false }

func gsoControl(oob []byte, _ int) []byte { return oob }

func gsoRefused(error) bool { return false }

func groEnable(*net.UDPConn) bool { return false }

func groSize([]byte) int { return 0 }

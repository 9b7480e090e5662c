//go:build !linux

package dnsproxy

import "net"

func newBatchIO(conn *net.UDPConn) batchIO { return &singleIO{conn: conn} }

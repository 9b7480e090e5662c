//go:build !linux

package netstack

import (
	"os"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// rawGSOFile is nil where the TUN takes no virtio-net headers: GSO segments
// are cut into packets (addGSO).
func rawGSOFile(tun.Device, int) *os.File { return nil }

func (w *batchWriter) writeGSO(*stack.PacketBuffer) bool { return false }

// rawTUNReader is nil where the TUN takes no virtio-net headers.
func rawTUNReader(tun.Device, int, *zap.Logger) *os.File { return nil }

func (s *Stack) readRaw(*os.File) {}

package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// OpenUplinkCapture opens a packet socket (AF_PACKET, SOCK_DGRAM: packets
// from their IP header on, as LINKTYPE_RAW holds them) on every interface,
// with a filter that passes nothing until SetEndpoints. A packet on a
// loopback interface is seen twice (out and back in): only the outgoing copy
// is read. Needs CAP_NET_RAW.
func OpenUplinkCapture() (UplinkCapture, error) {
	// Protocol 0 until the filter is on: a socket bound to ETH_P_ALL queues
	// every packet from the start.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("uplink capture: packet socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "packet")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("uplink capture: %w", err)
	}
	c := &packetCapture{f: f, rc: rc, loopback: make(map[int]bool)}
	if err := c.SetEndpoints(nil); err != nil {
		c.f.Close()
		return nil, err
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}
	if err := unix.Bind(fd, sa); err != nil {
		c.f.Close()
		return nil, fmt.Errorf("uplink capture: bind: %w", err)
	}
	return c, nil
}

type packetCapture struct {
	f  *os.File
	rc syscall.RawConn // f's, taken once: ReadPacket runs per packet

	mu       sync.Mutex // guards loopback
	loopback map[int]bool
}

// htons is v in network byte order, as the kernel reads a uint16 field on
// this host (a swap on little-endian hosts, none on big-endian ones).
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func (c *packetCapture) Interface() string { return "any" }

func (c *packetCapture) SetEndpoints(eps []Endpoint) error {
	return setKernelFilter(c.rc, eps, linkHeader{}, "attach the filter", func(fd int, raw []bpf.RawInstruction) error {
		prog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
		return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
	})
}

func (c *packetCapture) ReadPacket(buf []byte) (int, int, error) {
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			// MSG_TRUNC: n is the packet's whole length.
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return 0, 0, net.ErrClosed
			}
			return 0, 0, err
		}
		if rerr != nil {
			return 0, 0, fmt.Errorf("uplink capture: read: %w", rerr)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype != unix.PACKET_OUTGOING && c.isLoopback(ll.Ifindex) {
			continue
		}
		return min(n, len(buf)), n, nil
	}
}

// isLoopback reports whether interface index i is a loopback interface.
func (c *packetCapture) isLoopback(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	lo, ok := c.loopback[i]
	if !ok {
		ifc, err := net.InterfaceByIndex(i)
		lo = err == nil && ifc.Flags&net.FlagLoopback != 0
		c.loopback[i] = lo
	}
	return lo
}

func (c *packetCapture) Close() error { return c.f.Close() }
